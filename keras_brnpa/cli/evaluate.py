"""``brnpa evaluate``: accuracy and explanation metrics of any ``.keras`` classifier."""

import contextlib
import os

from keras_brnpa.cli import _common
from keras_brnpa.cli import _data
from keras_brnpa.cli._common import CLIError
from keras_brnpa.cli._common import UsageError
from keras_brnpa.cli._common import say

FROM_LOGITS = {"auto": None, "yes": True, "no": False}


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
        parser.add_argument("--batch-size", type=_common.positive_int, default=32,
                            help="images per forward pass")
    parser.add_argument("--rise-masks", type=_common.positive_int, default=500,
                        help="RISE: number of random masks per image")
    parser.add_argument("--score-channels", type=_common.positive_int, default=None,
                        help="Score-CAM: only the N most active channels per image "
                        "(default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_parser(commands):
    parser = commands.add_parser(
        "evaluate", help="accuracy and explanation metrics of a model on a data set",
        description="Explain the test images of a data set with one or several methods and "
        "score the maps (DAUC, IAUC, sparsity; pointing game and energy in mask when masks "
        "exist), with the model's accuracy. Works with any .keras classifier.")
    _data.add_data_options(parser, num_images=200)
    add_model_options(parser, batch_size=False)
    parser.add_argument("--methods", default="auto",
                        help="comma-separated explanation methods (brnpa, attention, gradcam, "
                        "gradcam++, scorecam, eigencam, ablationcam, rise); auto: the model's "
                        "own maps for BR-NPA/B-CNN heads, Grad-CAM for others")
    parser.add_argument("--steps", type=_common.positive_int, default=24,
                        help="deletion/insertion steps")
    parser.add_argument("--class-names", default=None,
                        help="a file (one name per line) or a comma-separated list; default: "
                        "the names recorded in the model's run folder")
    parser.add_argument("--output", default=None,
                        help="folder for report.md, metrics.json, gallery.png, curves.png")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier report")
    parser.set_defaults(run=run)


def parse_methods(text, model):
    """The explanation methods of ``--methods`` (``auto`` picks per model)."""
    from keras_brnpa import explain

    from keras_brnpa.models import head_kind

    if text.strip() == "auto":
        return [explain.default_method(model)]
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError(f"--methods: no method in {text!r}: use one or more of "
                         f"{', '.join(explain.METHODS)}, or auto")
    methods = []
    for name in names:
        try:
            methods.append(explain.method_name(name))
        except ValueError:
            raise UsageError(f"--methods: unknown method {name!r}: use one of "
                             f"{', '.join(explain.METHODS)}") from None
    own = {"brnpa", "attention", "feature_norm"} & set(methods)
    if own and head_kind(model) is None:
        raise UsageError(f"--methods: {', '.join(sorted(own))} needs a model from "
                         "build_classifier (layers 'backbone', 'head', 'logits'); use gradcam, "
                         "scorecam, rise, ... for other models")
    return methods


def model_inputs(args, model, images01):
    """Images in [0, 1] converted to the model's input convention."""
    from keras_brnpa import models

    scale = models.input_scale(model) if args.input_scale == "auto" else args.input_scale
    return models.scale_images(images01, scale), scale


def method_options(args):
    options = {"rise": {"n_masks": args.rise_masks}}
    if args.score_channels:
        options["scorecam"] = {"max_channels": args.score_channels}
    return options


def run(args, callbacks=()):
    """``brnpa evaluate``: every option checked before the output is touched."""
    _data.check_data_options(args)
    if args.output and not args.overwrite:
        from keras_brnpa.evaluation.compare import REPORT_FILES

        existing = [f for f in REPORT_FILES if os.path.exists(os.path.join(args.output, f))]
        if existing:
            raise CLIError(f"--output: {args.output} already holds {', '.join(existing)}; pass "
                           "--overwrite to replace them")
    _common.import_keras()
    from keras_brnpa import evaluation

    model = _common.load_model(args.model)
    methods = parse_methods(args.methods, model)
    args.image_size = _common.model_image_size(model, args.image_size)[0]
    class_names = _data.read_class_names(args.class_names, args.model)
    images01, labels, masks, data_names = _data.load_test_data(args)
    classes = model.output_shape[-1]
    if classes != len(data_names):
        raise CLIError(f"--model: the model has {classes} classes but the data has "
                       f"{len(data_names)}")
    images, scale = model_inputs(args, model, images01)
    source = args.data or args.dataset
    say(f"evaluating {args.model} on {len(images)} images of {source} (input {scale})",
        args.quiet)
    lock = _common.output_lock(args.output) if args.output else contextlib.nullcontext()
    with lock:
        try:
            report = evaluation.compare_explanations(
                {os.path.basename(args.model): model}, images, labels=labels, masks=masks,
                methods=methods, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                options=method_options(args), class_names=class_names or data_names,
                verbose=not args.quiet, layer_name=args.layer,
                from_logits=FROM_LOGITS[args.from_logits])
        except ValueError as error:
            raise CLIError(_common.first_line(error)) from None
        report.images = images01
        print(report.to_markdown(), flush=True)
        if args.output:
            report.save(args.output, overwrite=True)
            say(f"report written to {args.output} (report.md, metrics.json, gallery.png, "
                "curves.png)", args.quiet)
    return 0
