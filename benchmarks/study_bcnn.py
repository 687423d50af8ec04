"""Study: does the B-CNN keep up with the plain CNN on the harder task?

Trains, on ``keras_brnpa.datasets.synthetic_clutter`` (small digits in
clutter, 10 classes, 64 px), the plain CNN (``head="gap"``) and the B-CNN
(``head="bcnn"``, ``BilinearAttentionPooling``) with and without the
B-CNN paper's signed square root and L2 normalisation of the pooled
vectors, on the same small backbone from scratch (three convolutions,
16x16 maps; ``--backbone tiny`` for the tiny ResNet), for each seed, and prints
the test accuracies as a Markdown table (the one in docs/how_it_works.md).
Not a timing: run it through the machine's job queue like any training.

Usage::

    KERAS_BACKEND=tensorflow python benchmarks/study_bcnn.py
    python benchmarks/study_bcnn.py --models gap bcnn --bcnn-lr 1e-2
    python benchmarks/study_bcnn.py --quick          # seconds: checks it runs
"""

import argparse

import _common  # noqa: F401  (puts the repository on sys.path)
import keras
import numpy as np

import keras_brnpa

#: model name -> (head, BilinearAttentionPooling(normalize=...)).
MODELS = {
    "gap": ("gap", None),
    "bcnn": ("bcnn", True),
    "bcnn-plain": ("bcnn", False),
}
LABELS = {
    "gap": "CNN (`gap`)",
    "bcnn": "B-CNN, signed sqrt + L2 (`normalize=True`)",
    "bcnn-plain": "B-CNN, pooled vectors as they are (`normalize=False`)",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="clutter", choices=("clutter", "parts"),
                        help="synthetic_clutter (10 classes) or synthetic_parts (5 classes)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--train-images", type=int, default=3000)
    parser.add_argument("--test-images", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--backbone", default="conv", choices=("conv", "tiny"),
                        help="conv: three 3x3 convolutions of 32, 64, 128 filters, stride 4 "
                        "(16x16 maps at 64 px); tiny: the tiny ResNet")
    parser.add_argument("--resolution", default="low", choices=("low", "high"),
                        help="of the tiny ResNet")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3,
                        help="peak learning rate of the CNN (Adam, cosine decay to 0)")
    parser.add_argument("--bcnn-lr", type=float, default=None,
                        help="peak learning rate of the B-CNN models (default --lr)")
    parser.add_argument("--quick", action="store_true", help="a tiny run to check that it works")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_images, args.test_images, args.epochs, args.seeds = 64, 20, 1, [0]
        args.image_size = 32
    return args


def build(name, num_classes, size, resolution, backbone):
    head, normalize = MODELS[name]
    if backbone == "conv":
        backbone = _common.conv_backbone(size, filters=(32, 64, 128))
    else:
        backbone = "tiny"
    model = keras_brnpa.models.build_classifier(
        num_classes, backbone=backbone, head=head, resolution=resolution,
        input_shape=(size, size, 3), name=name.replace("-", "_"))
    if normalize is False:
        # The same layout with the B-CNN layer's normalisation switched off.
        backbone = model.get_layer("backbone")
        inputs = keras.Input((size, size, 3), name="images")
        vectors, _ = keras_brnpa.BilinearAttentionPooling(
            n_parts=3, normalize=False, data_format="channels_last", name="head",
        )(backbone(inputs), return_attention_maps=True)
        x = keras.layers.Dropout(0.0, name="dropout")(vectors)
        logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
        model = keras.Model(inputs, logits, name="bcnn_plain")
    return model


def train_and_test(name, lr, seed, data, args, classes):
    (x, y), (tx, ty) = data
    keras.utils.set_random_seed(seed)
    model = build(name, classes, args.image_size, args.resolution, args.backbone)
    keras_brnpa.models.set_batch_norm_momentum(model)
    _common.fit_cosine(model, x, y, args.epochs, lr, args.batch_size)
    logits = model.predict(tx, batch_size=100, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == ty))


def main(argv=None):
    args = parse_args(argv)
    print(_common.header("study_bcnn", data=args.data, epochs=args.epochs, train=args.train_images,
                         test=args.test_images, size=args.image_size,
                         backbone=args.backbone, resolution=args.resolution))
    results = {}
    generate = getattr(keras_brnpa.datasets, f"synthetic_{args.data}")
    classes = 10 if args.data == "clutter" else 5
    for seed in args.seeds:
        x, y, _ = generate(args.train_images, args.image_size, classes, seed=seed)
        tx, ty, _ = generate(args.test_images, args.image_size, classes, seed=seed + 1000)
        for name in args.models:
            lr = args.lr if name == "gap" or args.bcnn_lr is None else args.bcnn_lr
            accuracy = train_and_test(name, lr, seed, ((x, y), (tx, ty)), args, classes)
            results.setdefault((name, lr), []).append(accuracy)
            print(f"RESULT model={name} lr={lr:g} seed={seed} accuracy={accuracy:.4f}", flush=True)
    seeds = ", ".join(str(s) for s in args.seeds)
    rows = [[LABELS[name], f"{lr:g}", str(args.epochs), ", ".join(f"{a:.3f}" for a in accs),
             f"{np.mean(accs):.3f}"] for (name, lr), accs in results.items()]
    print()
    _common.print_table(["model", "learning rate", "epochs", f"test accuracy (seeds {seeds})",
                         "mean"], rows)


if __name__ == "__main__":
    main()
