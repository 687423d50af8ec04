"""Train BR-NPA on CUB-200-2011 as in the paper (low-resolution teacher).

    python examples/train_cub.py --data-dir ~/tensorflow_datasets --download
    python examples/train_cub.py --smoke    # seconds, on the embedded data

The paper's setup: ResNet-50 pretrained on ImageNet (keras-cv preset
``resnet50_imagenet``), a 3-part BR-NPA head, 448 px crops of images
resized to 512 (random crop, horizontal flip, colour jitter for training,
centre crop for testing), SGD with learning rate 1e-3 and momentum 0.9.
Training resumes where it stopped if interrupted (BackupAndRestore in the
output folder). The trained model is the teacher of ``distill_cub.py``.

``--smoke`` runs the same code on a few synthetic images with the tiny
backbone and no pretrained weights (nothing is downloaded).
"""

import argparse
import os

import keras

import keras_brnpa


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run on synthetic data")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--data-dir", default=None, help="tfds data folder")
    parser.add_argument("--download", action="store_true", help="let tfds download CUB")
    parser.add_argument("--output", default=os.path.join("runs", "cub_teacher"))
    return parser.parse_args()


def cub_data(args):
    """(train, test, num_classes): CUB from tfds, or synthetic for --smoke."""
    if args.smoke:
        images, labels, _ = keras_brnpa.datasets.synthetic_parts(16, 64, num_classes=4, seed=0)
        test_images, test_labels, _ = keras_brnpa.datasets.synthetic_parts(8, 64, 4, seed=1)
        train = keras_brnpa.datasets.as_dataset(images, labels, batch_size=8, shuffle=True)
        test = keras_brnpa.datasets.as_dataset(test_images, test_labels, batch_size=8)
        return train, test, 4
    train, info = keras_brnpa.datasets.load_tfds(
        "caltech_birds2011", "train", image_size=args.image_size, training=True,
        batch_size=args.batch_size, data_dir=args.data_dir, download=args.download,
        with_info=True,
    )
    test = keras_brnpa.datasets.load_tfds(
        "caltech_birds2011", "test", image_size=args.image_size, training=False,
        batch_size=args.batch_size, data_dir=args.data_dir, download=args.download,
    )
    return train, test, info.features["label"].num_classes


def main():
    args = parse_args()
    if args.smoke:
        args.epochs, args.image_size = 1, 64
    keras.utils.set_random_seed(0)
    train, test, num_classes = cub_data(args)
    model = keras_brnpa.models.build_classifier(
        num_classes,
        backbone="tiny" if args.smoke else "resnet50",
        weights=None if args.smoke else "resnet50_imagenet",
        head="brnpa",
        n_parts=3,
        resolution="low",
        input_shape=(args.image_size, args.image_size, 3),
    )
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        run_eagerly=args.smoke,
    )
    os.makedirs(args.output, exist_ok=True)
    model.fit(
        train,
        validation_data=test,
        epochs=args.epochs,
        callbacks=[keras.callbacks.BackupAndRestore(os.path.join(args.output, "backup"))],
        verbose=2,
    )
    path = os.path.join(args.output, "model.keras")
    model.save(path)
    print(f"teacher saved to {path}")


if __name__ == "__main__":
    main()
