"""Study: does the B-CNN keep up with the plain CNN on the harder task?

Trains, on ``keras_brnpa.datasets.synthetic_clutter`` (small digits in
clutter, 10 classes, 64 px), the plain CNN (``head="gap"``) and the B-CNN
(``head="bcnn"``, ``BilinearAttentionPooling``) with and without the
B-CNN paper's signed square root and L2 normalisation of the pooled
vectors, on the same small backbone from scratch (three convolutions,
16x16 maps; ``--backbone tiny`` for the tiny ResNet), for each seed, and prints
the test accuracies as a Markdown table (the one in docs/how_it_works.md).
The ``--bcnn-*`` flags change the B-CNN only (its layer's ``scale`` and
``epsilon``, a batch normalisation of or dropout on the pooled vectors,
its learning rate, warm-up and gradient clipping); the CNN keeps ``--lr``.
``--curve`` also prints the test accuracy after every epoch.
Not a timing: run it through the machine's job queue like any training.

Usage::

    KERAS_BACKEND=tensorflow python benchmarks/study_bcnn.py
    python benchmarks/study_bcnn.py --models gap bcnn --bcnn-lr 1e-2
    python benchmarks/study_bcnn.py --quick          # seconds: checks it runs
    python benchmarks/study_bcnn.py --seeds 2 --curve  # accuracies after every epoch

The setting that keeps up with the CNN on ``synthetic_clutter`` (issue 23,
docs/how_it_works.md): the normalised vectors scaled by ``sqrt(n_parts *
C)`` and one epoch of warm-up::

    KERAS_BACKEND=tensorflow python benchmarks/study_bcnn.py --backbone tiny \
        --resolution high --train-images 10000 --epochs 6 --models gap bcnn \
        --bcnn-scale auto --bcnn-warmup 1

It holds on seeds 0, 1 and 3 but not on seed 2 (0.782 against 0.842),
and no setting measured holds on all four (docs/how_it_works.md).
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
    parser.add_argument("--bcnn-epsilon", type=float, default=None,
                        help="BilinearAttentionPooling(epsilon=...) under the signed square root "
                        "(default the layer's)")
    parser.add_argument("--bcnn-scale", default=None, type=_scale,
                        help="BilinearAttentionPooling(scale=...): 'auto' (sqrt(n_parts * C)) "
                        "or a number (default the layer's 1.0: unit vectors)")
    parser.add_argument("--bcnn-pooled-bn", action="store_true",
                        help="a BatchNormalization on the pooled vectors, before the classifier")
    parser.add_argument("--bcnn-clipnorm", type=float, default=None,
                        help="clip each gradient to this L2 norm (B-CNN models only)")
    parser.add_argument("--bcnn-warmup", type=float, default=0.0,
                        help="epochs of linear warm-up from 0 to the peak learning rate before "
                        "the cosine decay (B-CNN models only)")
    parser.add_argument("--bcnn-dropout", type=float, default=0.0,
                        help="dropout rate on the pooled vectors, before the classifier "
                        "(build_classifier(dropout=...); B-CNN models only)")
    parser.add_argument("--curve", action="store_true",
                        help="also score the test images after every epoch and print the "
                        "test accuracy per epoch (the training curve)")
    parser.add_argument("--quick", action="store_true", help="a tiny run to check that it works")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_images, args.test_images, args.epochs, args.seeds = 64, 20, 1, [0]
        args.image_size = 32
    return args


def _scale(text):
    """``--bcnn-scale``: ``"auto"`` or a float."""
    return text if text == "auto" else float(text)


def head_options(args):
    """The ``BilinearAttentionPooling`` options that the B-CNN flags set."""
    options = {}
    if args is not None and args.bcnn_epsilon is not None:
        options["epsilon"] = args.bcnn_epsilon
    if args is not None and args.bcnn_scale is not None:
        options["scale"] = args.bcnn_scale
    return options


def label(name, args):
    """The table's name of a model, with the B-CNN flags that changed it."""
    if name == "gap":
        return LABELS[name]
    extra = [f"`{key}={value!r}`" for key, value in head_options(args).items()]
    if args.bcnn_pooled_bn:
        extra.append("BatchNormalization on the pooled vectors")
    if args.bcnn_clipnorm is not None:
        extra.append(f"clipnorm {args.bcnn_clipnorm:g}")
    if args.bcnn_dropout:
        extra.append(f"dropout {args.bcnn_dropout:g}")
    if args.bcnn_warmup:
        extra.append(f"{args.bcnn_warmup:g} epochs of warm-up")
    return LABELS[name] + "".join(", " + item for item in extra)


def build(name, num_classes, size, resolution, backbone, args=None):
    head, normalize = MODELS[name]
    if backbone == "conv":
        backbone = _common.conv_backbone(size, filters=(32, 64, 128))
    else:
        backbone = "tiny"
    model = keras_brnpa.models.build_classifier(
        num_classes, backbone=backbone, head=head, resolution=resolution,
        input_shape=(size, size, 3), name=name.replace("-", "_"))
    options = head_options(args) if head == "bcnn" else {}
    pooled_bn = head == "bcnn" and args is not None and args.bcnn_pooled_bn
    if normalize is not False and not pooled_bn:
        # scale and epsilon make no weights and are read when the layer is
        # called: set on build_classifier's head, the weights start as
        # without them (the runs of docs/how_it_works.md).
        checked = keras_brnpa.BilinearAttentionPooling(**options)  # the layer's checks
        for key in options:
            setattr(model.get_layer("head"), key, getattr(checked, key))
    else:
        # The same layout with the B-CNN layer's options changed.
        backbone = model.get_layer("backbone")
        inputs = keras.Input((size, size, 3), name="images")
        layer = keras_brnpa.BilinearAttentionPooling(
            n_parts=3, normalize=normalize, data_format="channels_last", name="head", **options)
        vectors, _ = layer(backbone(inputs), return_attention_maps=True)
        if pooled_bn:
            vectors = keras.layers.BatchNormalization(name="pooled_norm")(vectors)
        x = keras.layers.Dropout(0.0, name="dropout")(vectors)
        logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
        model = keras.Model(inputs, logits, name=name.replace("-", "_"))
    if head == "bcnn" and args is not None and args.bcnn_dropout:
        # A Dropout with a positive rate makes a seed generator; made after
        # the weights (the built model's Dropout(0.0) replaced), the weights
        # start as without dropout (build_classifier(dropout=...) would
        # change them).
        vectors = model.get_layer("dropout").input
        x = keras.layers.Dropout(args.bcnn_dropout, seed=0, name="dropout")(vectors)
        model = keras.Model(model.inputs, model.get_layer("logits")(x), name=model.name)
    return model


def train_and_test(name, lr, seed, data, args, classes):
    (x, y), (tx, ty) = data
    keras.utils.set_random_seed(seed)
    model = build(name, classes, args.image_size, args.resolution, args.backbone, args)
    keras_brnpa.models.set_batch_norm_momentum(model)
    clipnorm = args.bcnn_clipnorm if name != "gap" else None
    warmup = args.bcnn_warmup if name != "gap" else 0.0
    _common.fit_cosine(model, x, y, args.epochs, lr, args.batch_size, eager=args.quick,
                       warmup_epochs=warmup, clipnorm=clipnorm,
                       validation_data=(tx, ty) if args.curve else None)
    history = getattr(getattr(model, "history", None), "history", {}) or {}
    for key, what in (("loss", "train loss"), ("accuracy", "train accuracy"),
                      ("val_accuracy", "test accuracy")):
        if history.get(key):
            print(f"  {what} per epoch ({name}, seed {seed}): "
                  + " ".join(f"{v:.3f}" for v in history[key]), flush=True)
    logits = model.predict(tx, batch_size=100, verbose=0)
    if not np.all(np.isfinite(logits)):
        print(f"  non-finite logits ({name}, seed {seed}): training diverged", flush=True)
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
    rows = [[label(name, args), f"{lr:g}", str(args.epochs), ", ".join(f"{a:.3f}" for a in accs),
             f"{np.mean(accs):.3f}"] for (name, lr), accs in results.items()]
    print()
    _common.print_table(["model", "learning rate", "epochs", f"test accuracy (seeds {seeds})",
                         "mean"], rows)


if __name__ == "__main__":
    main()
