"""``brnpa evaluate``: accuracy and explanation metrics of any ``.keras`` classifier."""

import os

from keras_brnpa.cli import _common
from keras_brnpa.cli import _data
from keras_brnpa.cli import _options
from keras_brnpa.cli._common import CLIError
from keras_brnpa.cli._common import say


def add_parser(commands):
    parser = commands.add_parser(
        "evaluate", help="accuracy and explanation metrics of a model on a data set",
        description="Explain the test images of a data set with one or several methods and "
        "score the maps (DAUC, IAUC, sparsity; pointing game and energy in mask when masks "
        "exist), with the model's accuracy. Works with any .keras classifier.")
    _options.add_data_options(parser, num_images=200)
    _options.add_model_options(parser, batch_size=False)
    _options.add_methods_option(parser)
    parser.add_argument("--steps", type=_common.positive_int, default=24,
                        help="deletion/insertion steps")
    parser.add_argument("--class-names", default=None,
                        help="a file (one name per line) or a comma-separated list; default: "
                        "the names recorded in the model's run folder")
    parser.add_argument("--output", default=None,
                        help="folder for report.md, metrics.json, gallery.png, curves.png")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier report")
    parser.set_defaults(run=run)


def model_inputs(args, model, images01):
    """Images in [0, 1] converted to the model's input convention."""
    from keras_brnpa import models

    scale = models.input_scale(model) if args.input_scale == "auto" else args.input_scale
    return models.scale_images(images01, scale), scale


def run(args, callbacks=()):
    """``brnpa evaluate``: every option checked before the output is touched."""
    _data.check_data_options(args)
    if args.output and not args.overwrite:
        from keras_brnpa.evaluation import REPORT_FILES

        existing = [f for f in REPORT_FILES if os.path.exists(os.path.join(args.output, f))]
        if existing:
            raise CLIError(f"--output: {args.output} already holds {', '.join(existing)}; pass "
                           "--overwrite to replace them")
    _common.import_keras()
    from keras_brnpa import evaluation

    model = _common.load_model(args.model)
    methods = _options.parse_methods(args.methods, model, args.methods_option)
    _options.check_layer(args, model)
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
    try:
        report = evaluation.compare_explanations(
            {os.path.basename(args.model): model}, images, labels=labels, masks=masks,
            methods=methods, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
            options=_options.method_options(args), class_names=class_names or data_names,
            verbose=not args.quiet, layer_name=args.layer,
            from_logits=_options.FROM_LOGITS[args.from_logits])
    except ValueError as error:
        raise CLIError(_common.first_line(error)) from None
    report.images = images01
    print(report.to_markdown(), flush=True)
    if args.output:  # the folder is claimed only to write the finished report
        with _common.output_folder(args.output):
            report.save(args.output, overwrite=True)
        _common.result(f"report written to {args.output} (report.md, metrics.json, "
                       "gallery.png, curves.png)")
    return 0
