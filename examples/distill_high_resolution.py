"""Distill a low-resolution BR-NPA teacher into its high-resolution student.

The recipe of the BR-NPA paper (Gomez et al., Pattern Recognition 2022):

1. train an ordinary ("low-resolution", stride 32) ResNet classifier with a
   BR-NPA head: the teacher;
2. build its twin with stages 3 and 4 at stride 1 (stride 8: attention
   maps 4x finer per side), starting from the teacher's weights;
3. train the twin as the student of the teacher (knowledge distillation,
   ``keras_brnpa.Distiller``);
4. compare accuracies and attention maps.

By default it runs offline in a few minutes on generated images
(``keras_brnpa.datasets.synthetic_parts``, classes that differ by small
coloured parts) with the tiny backbone: about 2 minutes of CPU time (on
TensorFlow, seed 0: teacher and student both at 0.68 test accuracy on 4
classes; the student's maps are 12x12 instead of 3x3)::

    python examples/distill_high_resolution.py --output runs/distill
    python examples/distill_high_resolution.py --smoke      # seconds
    KERAS_BACKEND=jax python examples/distill_high_resolution.py

The real thing (CUB-200-2011 from TensorFlow Datasets, ResNet-50 with
keras-cv ImageNet weights, 448 px; needs the data set prepared once with
``--download`` and a GPU)::

    python examples/distill_high_resolution.py --dataset caltech_birds2011 \\
        --weights resnet50_imagenet --image-size 448 --epochs 50 \\
        --distill-epochs 50 --distill-lr 1e-3 --batch-size 16 --download

Writes ``attention_maps.png`` (images, the teacher's and the student's
explanation maps side by side), ``summary.json``, ``teacher.keras`` and
``student.keras`` to ``--output``.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run (seconds), for tests")
    parser.add_argument(
        "--epochs", type=int, default=None, help="teacher epochs (default 6, smoke 1)"
    )
    parser.add_argument(
        "--distill-epochs", type=int, default=None, help="student epochs (default 4, smoke 1)"
    )
    parser.add_argument("--output", default="runs/distill_high_resolution", help="output folder")
    parser.add_argument(
        "--dataset",
        default=None,
        help="a TensorFlow Datasets name, e.g. caltech_birds2011 (default: generated images)",
    )
    parser.add_argument("--download", action="store_true", help="let tfds download --dataset")
    parser.add_argument(
        "--weights", default=None, help="keras-cv preset of the backbone, e.g. resnet50_imagenet"
    )
    parser.add_argument(
        "--backbone",
        default=None,
        help="tiny, resnet18..152 (default: tiny; resnet50 with --weights)",
    )
    parser.add_argument("--image-size", type=int, default=None, help="default 96 (smoke 64)")
    parser.add_argument("--num-classes", type=int, default=4, help="classes of the generated data")
    parser.add_argument("--num-images", type=int, default=None, help="generated training images")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 (smoke 8)")
    parser.add_argument("--n-parts", type=int, default=3)
    parser.add_argument("--teacher-lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument(
        "--distill-lr",
        type=float,
        default=1e-2,
        help="SGD learning rate of the student (momentum 0.9). The paper's 1e-3 "
        "suits a pretrained ResNet-50 at 448 px; the tiny backbone trained from "
        "scratch here learns faster with 1e-2",
    )
    parser.add_argument("--temperature", type=float, default=None, help="default Distiller's")
    parser.add_argument("--alpha", type=float, default=None, help="default Distiller's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--run-eagerly",
        action="store_true",
        help="train eagerly (set by --smoke on TensorFlow, where tracing a graph "
        "costs more than one step)",
    )
    args = parser.parse_args(argv)
    smoke = args.smoke
    if args.epochs is None:
        args.epochs = 1 if smoke else 6
    if args.distill_epochs is None:
        args.distill_epochs = 1 if smoke else 4
    if args.image_size is None:
        args.image_size = 64 if smoke else 96
    if args.batch_size is None:
        args.batch_size = 8 if smoke else 32
    if args.num_images is None:
        args.num_images = 8 if smoke else 2048
    if args.backbone is None:
        args.backbone = "resnet50" if args.weights else "tiny"
    for name in ("epochs", "distill_epochs", "image_size", "batch_size", "num_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def generated_data(args):
    """Train and test arrays from the embedded synthetic parts generator."""
    from keras_brnpa.datasets import synthetic_parts

    num_test = max(args.num_images // 4, args.num_classes, 8)
    train = synthetic_parts(
        args.num_images, args.image_size, args.num_classes, seed=args.seed
    )
    test = synthetic_parts(num_test, args.image_size, args.num_classes, seed=args.seed + 1)
    return (train[0], train[1]), (test[0], test[1]), args.num_classes


def tfds_data(args):
    """Train and test ``tf.data`` pipelines of a tfds set (imported lazily)."""
    try:
        from keras_brnpa.datasets import load_tfds
    except ImportError as error:
        raise SystemExit(
            f"--dataset {args.dataset} needs keras_brnpa.datasets.load_tfds and "
            f"tensorflow-datasets (pip install 'keras-brnpa[tfds]'): {error}"
        ) from error
    common = dict(image_size=args.image_size, batch_size=args.batch_size, seed=args.seed)
    try:
        train, info = load_tfds(
            args.dataset, "train", training=True, download=args.download, with_info=True, **common
        )
        test = load_tfds(args.dataset, "test", training=False, **common)
    except (ImportError, RuntimeError, ValueError) as error:
        raise SystemExit(f"Could not load --dataset {args.dataset}: {error}") from error
    return train, test, info.features["label"].num_classes


def fit_kwargs(data, args):
    """``fit`` arguments for arrays or a batched dataset."""
    if isinstance(data, tuple):
        return dict(x=data[0], y=data[1], batch_size=args.batch_size)
    return dict(x=data)


def batches(data, batch_size):
    """``(images, labels)`` batches of arrays or of a batched dataset."""
    if isinstance(data, tuple):
        for start in range(0, len(data[0]), batch_size):
            yield data[0][start : start + batch_size], data[1][start : start + batch_size]
    else:
        for images, labels in data:
            yield np.asarray(images), np.asarray(labels)


def accuracy_and_maps(model, test, batch_size, num_pictures=4):
    """Test accuracy, and the explanation maps of the first test images.

    One forward pass gives logits and maps (``attention_model``); the
    paper's explanation map is attention part 1 times the feature norm.
    """
    import keras

    import keras_brnpa

    explain = keras_brnpa.models.attention_model(model)
    correct = total = 0
    pictures = maps = None
    for images, labels in batches(test, batch_size):
        out = explain(images, training=False)
        logits = keras.ops.convert_to_numpy(out["logits"])
        correct += int((logits.argmax(-1) == labels).sum())
        total += len(labels)
        if maps is None:
            parts = keras.ops.convert_to_numpy(out["attention_maps"])[:num_pictures]
            norm = keras.ops.convert_to_numpy(out["feature_norm"])[:num_pictures]
            pictures, maps = np.asarray(images)[:num_pictures], parts[..., 0] * norm
    return correct / max(total, 1), pictures, maps


def save_picture(path, images, teacher_maps, student_maps):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.5 * rows), squeeze=False)
    size = images.shape[1]
    titles = (
        "image",
        "teacher {}x{}".format(*teacher_maps.shape[1:3]),
        "student {}x{}".format(*student_maps.shape[1:3]),
    )
    for row in range(rows):
        image = np.clip(images[row], 0, 1)
        for col, maps in enumerate((None, teacher_maps, student_maps)):
            ax = axes[row, col]
            ax.imshow(image, extent=(0, size, size, 0))
            if maps is not None:
                ax.imshow(
                    maps[row],
                    cmap="jet",
                    alpha=0.5,
                    interpolation="nearest",
                    extent=(0, size, size, 0),
                )
            ax.set_axis_off()
            if row == 0:
                ax.set_title(titles[col])
    fig.suptitle("BR-NPA explanation maps (part 1 x feature norm)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    import keras

    import keras_brnpa

    if args.smoke and keras.config.backend() == "tensorflow":
        args.run_eagerly = True  # one step: tracing the graph costs more
    keras.utils.set_random_seed(args.seed)
    os.makedirs(args.output, exist_ok=True)
    if args.dataset:
        train, test, num_classes = tfds_data(args)
    else:
        train, test, num_classes = generated_data(args)
    shape = (args.image_size, args.image_size, 3)
    print(f"backend {keras.config.backend()}, data {args.dataset or 'generated'}, "
          f"{num_classes} classes, images {shape}")

    # 1. The low-resolution teacher.
    start = time.time()
    teacher = keras_brnpa.models.build_classifier(
        num_classes,
        backbone=args.backbone,
        head="brnpa",
        n_parts=args.n_parts,
        weights=args.weights,
        input_shape=shape,
        name="teacher",
    )
    teacher.compile(
        optimizer=keras.optimizers.Adam(args.teacher_lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        run_eagerly=args.run_eagerly,
    )
    teacher.fit(**fit_kwargs(train, args), epochs=args.epochs, verbose=2)
    teacher_accuracy, pictures, teacher_maps = accuracy_and_maps(teacher, test, args.batch_size)
    print(f"teacher trained in {time.time() - start:.0f} s")

    # 2-3. The high-resolution student, distilled from the teacher.
    start = time.time()
    distill_options = {}
    if args.temperature is not None:
        distill_options["temperature"] = args.temperature
    if args.alpha is not None:
        distill_options["alpha"] = args.alpha
    if args.distill_lr != keras_brnpa.distillation.PAPER_DEFAULTS["learning_rate"]:
        distill_options["optimizer"] = keras.optimizers.SGD(
            args.distill_lr, momentum=keras_brnpa.distillation.PAPER_DEFAULTS["momentum"]
        )
    if isinstance(train, tuple):
        distill_options["batch_size"] = args.batch_size
    student, _ = keras_brnpa.distillation.distill(
        teacher,
        train,
        epochs=args.distill_epochs,
        run_eagerly=args.run_eagerly,
        verbose=2,
        **distill_options,
    )
    student_accuracy, _, student_maps = accuracy_and_maps(student, test, args.batch_size)
    print(f"student distilled in {time.time() - start:.0f} s")

    # 4. Accuracies and attention maps.
    teacher_res, student_res = teacher_maps.shape[1:3], student_maps.shape[1:3]
    print(f"teacher accuracy {teacher_accuracy:.3f}, attention maps "
          f"{teacher_res[0]}x{teacher_res[1]}")
    print(f"student accuracy {student_accuracy:.3f}, attention maps "
          f"{student_res[0]}x{student_res[1]} "
          f"({student_res[0] // teacher_res[0]}x finer per side)")
    picture = os.path.join(args.output, "attention_maps.png")
    save_picture(picture, pictures, teacher_maps, student_maps)
    teacher.save(os.path.join(args.output, "teacher.keras"))
    student.save(os.path.join(args.output, "student.keras"))
    summary = {
        "backend": keras.config.backend(),
        "dataset": args.dataset or "generated",
        "teacher_accuracy": float(teacher_accuracy),
        "student_accuracy": float(student_accuracy),
        "teacher_map_shape": [int(s) for s in teacher_res],
        "student_map_shape": [int(s) for s in student_res],
        "picture": picture,
    }
    with open(os.path.join(args.output, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    print(f"wrote {picture}")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
