"""The option builders the ``brnpa`` commands share, and the parsing of
the options that need a model (the explanation methods).

Each command module adds its own options and calls these for the shared
ones; no command imports another command. Nothing here imports Keras at
module level.
"""

import argparse

from keras_brnpa.cli._common import SYNTHETIC
from keras_brnpa.cli._common import UsageError
from keras_brnpa.cli._common import class_count
from keras_brnpa.cli._common import positive_float
from keras_brnpa.cli._common import positive_int
from keras_brnpa.cli._common import seed
from keras_brnpa.cli._common import unit_float

#: ``--from-logits`` choices and the library's ``from_logits`` value.
FROM_LOGITS = {"auto": None, "yes": True, "no": False}


def add_data_options(parser, image_size=64, num_images=3000):
    """The data source (embedded data, tfds or ``--data DIR``) and its sizes."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset", default=SYNTHETIC,
        help="'synthetic' (the embedded data) or a TensorFlow Datasets name: "
        "caltech_birds2011, oxford_iiit_pet, stanford_dogs, cars196, ...")
    source.add_argument(
        "--data", default=None, metavar="DIR",
        help="your own images: a folder with one subfolder per class (PNG, JPEG, BMP, GIF)")
    parser.add_argument("--masks", default=None, metavar="DIR",
                        help="with --data: ground-truth masks, same relative paths, PNG")
    parser.add_argument("--validation-split", type=unit_float, default=0.2,
                        help="with --data: share of the images held out for validation")
    parser.add_argument("--data-dir", default=None, help="tfds data folder")
    parser.add_argument("--download", action="store_true",
                        help="let tfds download a missing data set")
    parser.add_argument("--image-size", type=positive_int, default=image_size,
                        help="images are resized to this many pixels per side"
                        + ("" if image_size else " (default: the model's input size)"))
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per batch")
    parser.add_argument("--num-images", type=positive_int, default=num_images,
                        help="synthetic data: number of images (evaluate: at most this many "
                        "test images of any source)")
    parser.add_argument("--num-classes", type=class_count, default=5,
                        help="synthetic data: number of classes")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (data, weights)")


def add_training_options(parser, epochs, distill=False):
    """Epochs, optimiser and run control of ``train`` and ``distill``."""
    parser.add_argument("--epochs", type=positive_int, default=epochs,
                        help="number of epochs")
    if distill:
        parser.add_argument(
            "--optimizer", choices=("adam", "sgd"), default=None,
            help="default: the measured recipe (distillation.RECIPE_DEFAULTS): adam with a "
            "cosine decay over the run's steps; adam or sgd (momentum 0.9): a constant rate")
        parser.add_argument(
            "--learning-rate", type=positive_float, default=None,
            help="default: the recipe's 3e-3 (the start of its cosine decay) without "
            "--optimizer, else 2e-3 (adam) or 1e-3 (sgd)")
    else:
        parser.add_argument("--optimizer", choices=("adam", "sgd"), default=None,
                            help="default: adam from scratch, sgd (momentum 0.9) with --weights")
        parser.add_argument("--learning-rate", type=positive_float, default=None,
                            help="default: 2e-3 (adam) or 1e-3 (sgd)")
    parser.add_argument(
        "--augment", action="store_true",
        help="augment the training images (never the validation or test images): the BR-NPA "
        "authors' random crop (of a 1/0.875 enlargement), horizontal flip, brightness 0.126 "
        "and saturation 0.5 jitter (keras_brnpa.datasets.augmentation_layers); off by default")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished run in the output folder")
    parser.add_argument("--distribute", action="store_true",
                        help="data-parallel training over all devices (keras_brnpa.distribute)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    parser.add_argument("--eager", action="store_true",
                        help="run eagerly, without graph compilation (debugging, tiny runs)")


def add_model_options(parser, batch_size=True):
    """Options shared by ``explain`` and ``evaluate``: how to read the model."""
    parser.add_argument("--model", required=True, help="a .keras classifier")
    parser.add_argument(
        "--input-scale", choices=("auto", "0-1", "0-255", "imagenet"), default="auto",
        help="the pixel range the model takes; auto reads its own Rescaling/Normalization "
        "layers (0-255 when it rescales by 1/255 or 1/127.5, else 0-1); imagenet: ImageNet "
        "mean/std normalised")
    parser.add_argument(
        "--from-logits", choices=tuple(FROM_LOGITS), default="auto",
        help="whether the model outputs logits; auto detects a final softmax or sigmoid")
    parser.add_argument("--layer", default=None,
                        help="layer explained by the CAM methods: a name or a nested path "
                        "'outer/inner' (default: the last 4-D feature map)")
    if batch_size:  # evaluate has it among its data options
        parser.add_argument("--batch-size", type=positive_int, default=32,
                            help="images per forward pass")
    parser.add_argument("--rise-masks", type=positive_int, default=500,
                        help="RISE: number of random masks per image")
    parser.add_argument("--score-channels", type=positive_int, default=None,
                        help="Score-CAM: only the N most active channels per image "
                        "(default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


class _Methods(argparse.Action):
    """Repeatable ``--methods``/``--method``; remembers the spelling used."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, list(getattr(namespace, self.dest) or []) + [values])
        namespace.methods_option = option_string


def add_methods_option(parser):
    """``--methods`` (alias ``--method``) of ``explain`` and ``evaluate``."""
    parser.add_argument(
        "--methods", "--method", dest="methods", action=_Methods, default=None,
        metavar="METHODS",
        help="explanation methods, comma-separated or repeated (brnpa, attention, gradcam, "
        "gradcam++, scorecam, eigencam, ablationcam, rise, ...); default auto: the model's own "
        "attention for BR-NPA/B-CNN heads, Grad-CAM otherwise")
    parser.set_defaults(methods_option="--methods")


def parse_methods(text, model, option="--methods"):
    """The explanation methods of ``--methods`` (``auto`` picks per model).

    ``text``: a comma-separated string, or the list of repeated values.
    """
    from keras_brnpa import explain
    from keras_brnpa.models import head_kind

    if text is None or not isinstance(text, str):
        text = ",".join(text) if text else "auto"
    if text.strip() == "auto":
        return [explain.default_method(model)]
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError(f"{option}: no method in {text!r}: use one or more of "
                         f"{', '.join(explain.METHODS)}, or auto")
    methods = []
    for name in names:
        try:
            methods.append(explain.method_name(name))
        except ValueError:
            raise UsageError(f"{option}: unknown method {name!r}: use one of "
                             f"{', '.join(explain.METHODS)}") from None
    own = {"brnpa", "attention", "feature_norm"} & set(methods)
    if own and head_kind(model) is None:
        raise UsageError(f"{option}: {', '.join(sorted(own))} needs a model from "
                         "build_classifier (layers 'backbone', 'head', 'logits'); use gradcam, "
                         "scorecam, rise, ... for other models")
    return methods


def check_layer(args, model):
    """``--layer`` names a layer of the model, or a usage error."""
    if args.layer is None:
        return
    from keras_brnpa import models

    try:
        models.find_layer(model, args.layer)
    except ValueError as error:
        from keras_brnpa.cli._common import first_line

        raise UsageError(f"--layer {args.layer!r}: {first_line(error)}") from None


def method_options(args):
    """The per-method keyword arguments set by ``--rise-masks``, ``--score-channels``."""
    options = {"rise": {"n_masks": args.rise_masks}}
    if args.score_channels:
        options["scorecam"] = {"max_channels": args.score_channels}
    return options
