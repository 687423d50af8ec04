"""Compare BR-NPA's attention maps with post-hoc saliency, as pictures.

Trains two small classifiers on the embedded synthetic "parts" data (whose
classes differ only by small coloured part regions, with ground-truth part
masks): a BR-NPA model (the method) and a plain CNN with global average
pooling (the baseline explained post hoc). Both use the "tiny" ResNet at
high resolution (stride 8: a 64 px image gives an 8x8 map). Then writes

- ``gallery.png``: rows = test images; columns = the image, its part
  masks, the BR-NPA part maps (one colour per part), the BR-NPA
  explanation map (part 1 x feature norm), and Grad-CAM, Grad-CAM++,
  Score-CAM and RISE of the CNN;
- ``curves.png``: deletion and insertion curves of every map;

and prints test accuracies, DAUC / IAUC and the pointing game per method.

Usage::

    python examples/explain_gallery.py                  # ~ a few minutes on a CPU
    python examples/explain_gallery.py --smoke          # seconds: checks it runs
    KERAS_BACKEND=jax python examples/explain_gallery.py --output runs/gallery_jax
"""

import argparse
import os
import time

import keras
import numpy as np

import keras_brnpa
from keras_brnpa import explain
from keras_brnpa import visualize


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="runs/explain_gallery", help="output folder")
    parser.add_argument("--num-images", type=int, default=1500, help="training images")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-classes", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--gallery", type=int, default=6, help="test images in the gallery")
    parser.add_argument("--n-masks", type=int, default=1000, help="RISE masks")
    parser.add_argument("--steps", type=int, default=16, help="deletion/insertion steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny run (64 images, 1 epoch) to check that it works"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.num_images, args.epochs, args.gallery, args.n_masks, args.steps = 64, 1, 3, 32, 4
    return args


def train(head, images, labels, args):
    model = keras_brnpa.models.build_classifier(
        args.num_classes,
        backbone="tiny",
        head=head,
        n_parts=3,
        resolution="high",
        input_shape=images.shape[1:],
    )
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(images, labels, epochs=args.epochs, batch_size=32, verbose=0)
    return model


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    started = time.time()
    size, classes = args.image_size, args.num_classes
    x_train, y_train, _ = keras_brnpa.datasets.synthetic_parts(
        num_images=args.num_images, image_size=size, num_classes=classes, seed=args.seed
    )
    x_test, y_test, masks = keras_brnpa.datasets.synthetic_parts(
        num_images=max(args.gallery, 64 if not args.smoke else args.gallery),
        image_size=size, num_classes=classes, seed=args.seed + 1,
    )
    for k, name in enumerate(keras_brnpa.datasets.class_names(classes)):
        print(f"class {k}: {name}")

    models = {head: train(head, x_train, y_train, args) for head in ("brnpa", "gap")}
    for head, model in models.items():
        predictions = np.argmax(keras.ops.convert_to_numpy(model.predict(x_test, verbose=0)), -1)
        print(f"{head:5s} test accuracy: {np.mean(predictions == y_test):.3f}")

    x, y, m = x_test[: args.gallery], y_test[: args.gallery], masks[: args.gallery]
    brnpa, cnn = models["brnpa"], models["gap"]
    predicted = np.argmax(keras.ops.convert_to_numpy(brnpa.predict(x, verbose=0)), -1)
    maps = {
        "part masks": m.astype("float32"),
        "BR-NPA parts": explain.attention_maps(brnpa, x),
        "BR-NPA": explain.explanation_map(brnpa, x),
        "Grad-CAM": explain.grad_cam(cnn, x),
        "Grad-CAM++": explain.grad_cam_plus_plus(cnn, x),
        "Score-CAM": explain.score_cam(cnn, x, batch_size=64),
        "RISE": explain.rise(cnn, x, n_masks=args.n_masks, mask_size=8, batch_size=64),
    }
    os.makedirs(args.output, exist_ok=True)
    titles = [f"class {t}, BR-NPA says {p}" for t, p in zip(y, predicted)]
    gallery = visualize.save_gallery(
        os.path.join(args.output, "gallery.png"), x, maps, titles=titles, cell_size=1.6, dpi=100
    )

    # Faithfulness and localisation of each single map (parts excluded).
    curves = {"deletion": {}, "insertion": {}}
    print(f"{'method':12s} {'DAUC':>6s} {'IAUC':>6s} {'pointing':>8s}")
    for method, saliency in maps.items():
        if saliency.ndim != 3 or method == "part masks":
            continue
        model = brnpa if method.startswith("BR-NPA") else cnn
        hits = keras_brnpa.metrics.pointing_game(saliency, m)
        if saliency.shape[1] == size and size % 8 == 0:  # RISE: score on an 8x8 grid
            saliency = saliency.reshape(len(x), 8, size // 8, 8, size // 8).mean(axis=(2, 4))
        steps = min(args.steps, saliency.shape[1] * saliency.shape[2])
        dauc, curves["deletion"][method] = keras_brnpa.metrics.deletion_auc(
            model, x, saliency, steps=steps, return_curves=True
        )
        iauc, curves["insertion"][method] = keras_brnpa.metrics.insertion_auc(
            model, x, saliency, steps=steps, return_curves=True
        )
        print(f"{method:12s} {np.mean(dauc):6.3f} {np.mean(iauc):6.3f} {np.mean(hits):8.2f}")
    plot = visualize.plot_curves(os.path.join(args.output, "curves.png"), curves)
    print(f"wrote {gallery} and {plot} in {time.time() - started:.0f} s "
          f"(backend {keras.config.backend()})")
    return gallery, plot


if __name__ == "__main__":
    main()
