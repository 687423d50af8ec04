"""Distill the CUB teacher into the high-resolution BR-NPA student.

    python examples/distill_cub.py --teacher runs/cub_teacher/model.keras
    python examples/distill_cub.py --smoke    # seconds, on the embedded data

The student is the teacher with the strides of its last two ResNet stages
set to 1 (a 56x56 feature map at 448 px instead of 14x14), starting from
the teacher's weights; it is trained on the teacher's softened predictions
and the labels (``keras_brnpa.Distiller``), then saved alone as a plain
Keras model. ``--smoke`` trains a tiny teacher for one step on synthetic
images and distills it for one step.
"""

import argparse
import os

import keras

import keras_brnpa


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run on synthetic data")
    parser.add_argument("--teacher", default=os.path.join("runs", "cub_teacher", "model.keras"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--output", default=os.path.join("runs", "cub_student"))
    return parser.parse_args()


def smoke_teacher_and_data():
    images, labels, _ = keras_brnpa.datasets.synthetic_parts(16, 64, num_classes=4, seed=0)
    train = keras_brnpa.datasets.as_dataset(images, labels, batch_size=16, shuffle=True)
    teacher = keras_brnpa.models.build_classifier(
        4, backbone="tiny", head="brnpa", input_shape=(64, 64, 3)
    )
    teacher.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    teacher.fit(train, epochs=1, verbose=2)
    return teacher, train


def main():
    args = parse_args()
    keras.utils.set_random_seed(0)
    if args.smoke:
        teacher, train = smoke_teacher_and_data()
        test, args.epochs = None, 1
    else:
        teacher = keras.models.load_model(args.teacher)
        train = keras_brnpa.datasets.load_tfds(
            "caltech_birds2011", "train", image_size=args.image_size, training=True,
            batch_size=args.batch_size, data_dir=args.data_dir,
        )
        test = keras_brnpa.datasets.load_tfds(
            "caltech_birds2011", "test", image_size=args.image_size, training=False,
            batch_size=args.batch_size, data_dir=args.data_dir,
        )
    # Strides of the last two stages set to 1; the teacher's weights.
    student = keras_brnpa.distillation.build_high_resolution_student(teacher)
    print("teacher feature map:", keras_brnpa.models.feature_shape(teacher))
    print("student feature map:", keras_brnpa.models.feature_shape(student))
    distiller = keras_brnpa.Distiller(
        teacher, student, temperature=args.temperature, alpha=args.alpha
    )
    distiller.compile(
        optimizer=keras_brnpa.distillation.paper_optimizer(),  # SGD 1e-3, momentum 0.9
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        run_eagerly=args.smoke,
    )
    os.makedirs(args.output, exist_ok=True)
    distiller.fit(
        train,
        validation_data=test,
        epochs=args.epochs,
        callbacks=[keras.callbacks.BackupAndRestore(os.path.join(args.output, "backup"))],
        verbose=2,
    )
    path = os.path.join(args.output, "model.keras")
    distiller.student.save(path)
    print(f"high-resolution student saved to {path}")


if __name__ == "__main__":
    main()
