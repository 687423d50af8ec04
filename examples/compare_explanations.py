"""Compare BR-NPA's own maps with post-hoc saliency on a plain CNN.

    python examples/compare_explanations.py             # a few minutes on a CPU
    python examples/compare_explanations.py --smoke     # seconds

Trains a BR-NPA classifier and a plain CNN (global average pooling) on the
embedded synthetic data, explains the test images with BR-NPA's
explanation map and with Grad-CAM, Grad-CAM++, Score-CAM and RISE on the
CNN, scores every method with the paper's metrics (deletion and insertion
AUC, sparsity) and the ground-truth parts (pointing game, energy in mask),
prints a table and writes a PNG gallery.
"""

import argparse
import os

import keras
import numpy as np

import keras_brnpa


def train(head, images, labels, num_classes, epochs, smoke):
    model = keras_brnpa.models.build_classifier(
        num_classes, backbone="tiny", head=head, input_shape=images.shape[1:]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        run_eagerly=smoke,
    )
    model.fit(images, labels, batch_size=32, epochs=epochs, verbose=2)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for tests")
    parser.add_argument("--output", default=os.path.join("runs", "compare_explanations.png"))
    args = parser.parse_args()
    size, num_classes = (64, 3) if args.smoke else (96, 5)
    n_train, n_test, epochs = (16, 4, 1) if args.smoke else (3000, 100, 4)
    keras.utils.set_random_seed(0)
    images, labels, _ = keras_brnpa.datasets.synthetic_parts(n_train, size, num_classes, seed=0)
    test, test_labels, masks = keras_brnpa.datasets.synthetic_parts(n_test, size, num_classes, seed=1)

    brnpa = train("brnpa", images, labels, num_classes, epochs, args.smoke)
    cnn = train("gap", images, labels, num_classes, epochs, args.smoke)
    explain = keras_brnpa.explain
    light = {"n_masks": 16, "mask_size": 4} if args.smoke else {"n_masks": 500, "mask_size": 6}
    methods = {
        "BR-NPA": (brnpa, explain.explanation_map(brnpa, test)),
        "Grad-CAM": (cnn, explain.grad_cam(cnn, test)),
        "Grad-CAM++": (cnn, explain.grad_cam_plus_plus(cnn, test)),
        "Score-CAM": (cnn, explain.score_cam(cnn, test, max_channels=4 if args.smoke else None)),
        "RISE": (cnn, explain.rise(cnn, test, **light)),
    }
    steps = 3 if args.smoke else 24
    print(f"{'method':12s} {'DAUC':>6s} {'IAUC':>6s} {'sparsity':>8s} {'pointing':>8s} {'energy':>6s}")
    for name, (model, maps) in methods.items():
        dauc = keras_brnpa.metrics.deletion_auc(model, test, maps, steps=steps).mean()
        iauc = keras_brnpa.metrics.insertion_auc(model, test, maps, steps=steps).mean()
        sparsity = np.nanmean(keras_brnpa.metrics.sparsity(maps))
        pointing = keras_brnpa.metrics.pointing_game(maps, masks).mean()
        energy = np.nanmean(keras_brnpa.metrics.energy_in_mask(maps, masks))
        print(f"{name:12s} {dauc:6.3f} {iauc:6.3f} {sparsity:8.2f} {pointing:8.2f} {energy:6.2f}")
    shown = min(4, n_test)
    keras_brnpa.visualize.save_gallery(
        args.output,
        test[:shown],
        {name: maps[:shown] for name, (_, maps) in methods.items()},
        titles=[f"class {c}" for c in test_labels[:shown]],
    )
    print(f"gallery written to {args.output}")


if __name__ == "__main__":
    main()
