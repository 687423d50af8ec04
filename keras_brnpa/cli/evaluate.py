"""``brnpa evaluate``: accuracy and explanation metrics of any ``.keras`` classifier."""

import os

from keras_brnpa.cli import _common
from keras_brnpa.cli import _data
from keras_brnpa.cli import _options
from keras_brnpa.cli._common import CLIError
from keras_brnpa.cli._common import say
from keras_brnpa.evaluation.report import DEFAULT_METRICS
from keras_brnpa.evaluation.report import METRICS
from keras_brnpa.evaluation.report import REPORT_FILES


def add_parser(commands):
    parser = commands.add_parser(
        "evaluate", help="accuracy and explanation metrics of a model on a data set",
        description="Explain the test images of a data set with one or several methods and "
        "score the maps (by default DAUC, IAUC, sparsity; pointing game and energy in mask "
        "when masks exist; --metrics adds DC/IC and ROAD), with the model's accuracy. Works "
        "with any .keras classifier.")
    _options.add_data_options(parser, num_images=200)
    _options.add_model_options(parser, batch_size=False)
    _options.add_methods_option(parser)
    parser.add_argument(
        "--split", choices=SPLITS, default="validation",
        help="with --data: which images of the folder to score: the validation split that "
        "the model's run recorded (its seed and --validation-split in run.json next to the "
        "model, else --seed and --validation-split), the training split, or all (training "
        "images included: scores on them say little)")
    parser.add_argument("--steps", type=_common.positive_int, default=24,
                        help="deletion/insertion steps")
    parser.add_argument(
        "--metrics", nargs="+", choices=tuple(METRICS), default=None, metavar="METRIC",
        help="the metrics to compute, space-separated, among: " + ", ".join(METRICS)
        + ". dauc/iauc: deletion/insertion AUC; dcic: deletion and insertion correlation "
        "(DC/IC, with the AUCs at little more cost); road: ROAD most relevant first (MoRF); "
        "road_lerf: ROAD least relevant first (as costly again); sparsity; density: the "
        "authors' sparsity; pointing: pointing game and energy in mask (needs masks). "
        "Default: " + " ".join(DEFAULT_METRICS) + " (pointing only when masks exist)")
    parser.add_argument("--class-names", default=None,
                        help="a file (one name per line) or a comma-separated list; default: "
                        "the names recorded in the model's run folder")
    parser.add_argument("--output", default=None,
                        help="folder for report.md, metrics.json, gallery.png, curves.png")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier report")
    parser.set_defaults(run=run)


SPLITS = ("validation", "train", "all")


def recorded_split(model_path, data):
    """``(validation_split, seed)`` recorded in ``run.json`` next to the model
    when the run trained on the folder ``data``; ``None`` otherwise."""
    config = _data.recorded_run_field(model_path, "config")
    if not isinstance(config, dict) or "validation_split" not in config:
        return None
    if config.get("data") and os.path.abspath(config["data"]) != os.path.abspath(data):
        return None
    return config.get("validation_split"), config.get("seed", 0)


def load_data(args):
    """``(images, labels, masks, class names, source)`` of the images to score.

    With ``--data``, the ``--split`` of the folder (made as ``brnpa train``
    makes it, with the run's recorded seed and fraction), then a seeded
    sample of ``--num-images`` stratified by class; ``source`` names the
    split and lists the files (for report.md and metrics.json).
    """
    from keras_brnpa import datasets
    from keras_brnpa import evaluation

    if args.data is None:
        images, labels, masks, names = _data.load_test_data(args)
        detail = ("generated with seed --seed + 2000, apart from the training images"
                  if args.dataset == _common.SYNTHETIC else "the data set's test split")
        return images, labels, masks, names, {"data": args.dataset, "split": "test",
                                              "split_detail": detail}
    fraction, seed = args.validation_split, args.seed
    origin = "--validation-split and --seed"
    recorded = recorded_split(args.model, args.data)
    if recorded is not None:
        fraction, seed = recorded
        origin = "recorded in the model's run.json"
    if args.split != "all" and not fraction:
        raise CLIError(f"--split {args.split}: the model's run trained on every image of "
                       f"{args.data} (no validation split recorded); pass --split all (the "
                       "scores then include training images) or evaluate another folder")
    try:
        if args.split == "all":
            data = datasets.image_folder(args.data, args.image_size, args.batch_size,
                                         shuffle=False, masks=args.masks, as_numpy=True)
            detail = "every image of the folder, training images included"
        else:
            data = datasets.image_folder(
                args.data, args.image_size, args.batch_size, validation_split=fraction,
                subset="validation" if args.split == "validation" else "training",
                seed=seed, shuffle=False, masks=args.masks, as_numpy=True)
            detail = f"{fraction:g} of the folder held out with seed {seed}, {origin}"
    except (ValueError, RuntimeError, OSError) as error:
        raise CLIError(_common.first_line(error)) from None
    chosen = evaluation.stratified_sample(data.y, args.num_images, seed=args.seed)
    if len(chosen) < len(data.y):
        detail += (f"; a sample of {len(chosen)} of its {len(data.y)} images stratified by "
                   f"class (seed {args.seed})")
    files = [os.path.relpath(data.file_paths[i], args.data) for i in chosen]
    masks = data.masks[chosen] if data.masks is not None else None
    source = {"data": os.path.abspath(args.data), "split": args.split,
              "split_detail": detail, "files": files}
    return data.x[chosen], data.y[chosen], masks, data.class_names, source


def model_inputs(args, model, images01):
    """Images in [0, 1] converted to the model's input convention."""
    from keras_brnpa import models

    scale = models.input_scale(model) if args.input_scale == "auto" else args.input_scale
    return models.scale_images(images01, scale), scale


def run(args, callbacks=()):
    """``brnpa evaluate``: every option checked before the output is touched."""
    _data.check_data_options(args)
    if args.output and not args.overwrite:
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
    images01, labels, masks, data_names, source = load_data(args)
    classes = model.output_shape[-1]
    if classes != len(data_names):
        raise CLIError(f"--model: the model has {classes} classes but the data has "
                       f"{len(data_names)}")
    if args.metrics and "pointing" in args.metrics and masks is None:
        raise CLIError("--metrics pointing: the images have no ground-truth masks (with --data, "
                       "pass --masks DIR); leave pointing out")
    images, scale = model_inputs(args, model, images01)
    say(f"evaluating {args.model} on {len(images)} images of {source['data']} (split "
        f"{source['split']}: {source['split_detail']}; input {scale})", args.quiet)
    try:
        report = evaluation.compare_explanations(
            {os.path.basename(args.model): model}, images, labels=labels, masks=masks,
            methods=methods, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
            options=_options.method_options(args), class_names=class_names or data_names,
            verbose=not args.quiet, layer_name=args.layer,
            from_logits=_options.FROM_LOGITS[args.from_logits], source=source,
            metrics=args.metrics)
    except ValueError as error:
        raise CLIError(_common.first_line(error)) from None
    report.images = images01[: len(report.images)]  # shown in [0, 1]
    print(report.to_markdown(), flush=True)
    if args.output:  # the folder is claimed only to write the finished report
        with _common.output_folder(args.output):
            report.save(args.output, overwrite=True)
        written = [name for name in REPORT_FILES
                   if os.path.exists(os.path.join(args.output, name))]
        _common.result(f"report written to {args.output} ({', '.join(written)})")
    return 0
