"""Quick start: BR-NPA as one layer of a keras.Sequential model.

    python examples/quickstart_sequential.py            # ~1 minute on a CPU
    python examples/quickstart_sequential.py --smoke    # a few seconds

Trains a small convolutional network whose pooling is the parameter-free
``BRNPAAttention`` layer on the embedded synthetic data (classes differ only
by small coloured parts of an object), then reads the attention maps of the
trained layer and checks how often part 1 points at a ground-truth part.
Works with KERAS_BACKEND=tensorflow, jax or torch.
"""

import argparse

import keras
import numpy as np

import keras_brnpa


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for tests")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    size, num_classes = 64, 5
    n_train, n_test = (32, 8) if args.smoke else (3000, 500)
    epochs = args.epochs or (1 if args.smoke else 8)
    keras.utils.set_random_seed(0)

    train = keras_brnpa.datasets.synthetic_parts_dataset(
        num_images=n_train, image_size=size, num_classes=num_classes, seed=0, batch_size=32
    )
    test_images, test_labels, test_masks = keras_brnpa.datasets.synthetic_parts(
        num_images=n_test, image_size=size, num_classes=num_classes, seed=1
    )

    model = keras.Sequential(name="quickstart")
    model.add(keras.Input((size, size, 3)))
    model.add(keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"))
    model.add(keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"))
    model.add(keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"))
    model.add(keras_brnpa.BRNPAAttention(n_parts=3))  # no weights to learn
    model.add(keras.layers.Dense(num_classes))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        run_eagerly=args.smoke,  # no graph compilation for a 1-step run
    )
    model.summary()
    model.fit(train, epochs=epochs, verbose=2)
    _, accuracy = model.evaluate(test_images, test_labels, verbose=0)
    print(f"test accuracy: {accuracy:.3f} (chance: {1 / num_classes:.3f})")

    # The attention maps: run the convolutions, then call the layer itself.
    layer = model.layers[-2]
    features = keras.Sequential(model.layers[:-2])(test_images)
    _, maps = layer(features, return_attention_maps=True)
    maps = keras.ops.convert_to_numpy(maps)  # (n_test, 8, 8, 3), part 1 first
    print("attention maps:", maps.shape, "each sums to 1:", np.allclose(maps.sum((1, 2)), 1, atol=1e-4))
    hits = keras_brnpa.metrics.pointing_game(maps[..., 0], test_masks)
    print(f"part 1 points at a discriminative part in {hits.mean():.0%} of the test images")


if __name__ == "__main__":
    main()
