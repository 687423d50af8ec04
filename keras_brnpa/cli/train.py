"""``brnpa train``: train a classifier on the embedded data, a tfds set or your folder."""

import os

from keras_brnpa.cli import _common
from keras_brnpa.cli import _data
from keras_brnpa.cli import _options
from keras_brnpa.cli import _training
from keras_brnpa.cli._common import UsageError
from keras_brnpa.cli._common import say


def add_parser(commands):
    parser = commands.add_parser(
        "train", help="train a classifier (resumable)",
        description="Train a classifier (ResNet or tiny backbone, BR-NPA, B-CNN or GAP head) "
        "on the embedded synthetic data, a TensorFlow Datasets set or your own folder of "
        "class subfolders (--data). Rerun the same command after an interruption to resume.")
    _options.add_data_options(parser)
    _options.add_training_options(parser, epochs=5)
    parser.add_argument("--backbone", choices=_common.BACKBONES, default="tiny",
                        help="the feature extractor")
    parser.add_argument("--head", choices=_common.HEADS, default="brnpa",
                        help="brnpa (the paper), bcnn (learned attention) or gap (plain CNN)")
    parser.add_argument("--resolution", choices=("auto", "low", "high"), default="auto",
                        help="high: strides of the last two stages set to 1 (4x finer maps, "
                        "about 4x slower); auto: low when it gives at least 8x8 map cells "
                        "(--image-size 225 or more), else high")
    parser.add_argument("--n-parts", type=_common.positive_int, default=3,
                        help="attention parts of the brnpa and bcnn heads")
    parser.add_argument("--dropout", type=_common.dropout, default=0.0,
                        help="dropout before the last dense layer")
    parser.add_argument("--weights", default=None,
                        help="backbone weights: a keras-cv preset name or a weights file")
    parser.add_argument("--output", default=os.path.join("runs", "train"), help="run folder")
    parser.set_defaults(run=run)


# --------------------------------------------------------------- command
def run(args, callbacks=()):
    """``brnpa train``: validate, load, build, then claim the folder and fit."""
    _data.check_data_options(args)
    if args.weights is not None and os.sep in args.weights and not os.path.exists(args.weights):
        raise UsageError(f"--weights: file not found: {args.weights}")
    args.resolution = _training.resolve_resolution(args)
    _training.resolve_optimizer(args, pretrained=args.weights is not None)
    keras = _common.import_keras()
    from keras_brnpa import models

    keras.utils.set_random_seed(args.seed)
    train, val, class_names = _data.load_training_data(args)
    with _training.distribution(args.distribute) as replicas:
        try:
            model = models.build_classifier(
                len(class_names), backbone=args.backbone, head=args.head, n_parts=args.n_parts,
                dropout=args.dropout, resolution=args.resolution, weights=args.weights,
                input_shape=(args.image_size, args.image_size, 3))
        except (ValueError, RuntimeError, OSError) as error:
            raise UsageError(_training.model_error(error, args)) from None
        keys = _training.DATA_KEYS + ("backbone", "head", "resolution", "dropout", "weights")
        if args.head != "gap":
            keys += ("n_parts",)
        config = _training.config_of(args, keys)
        with _common.output_folder(args.output, resumable=True):
            resumed = _common.claim_run(args.output, "train", config, args.overwrite,
                                        _training.run_files())
            say(("resuming" if resumed else "starting") + f" training in {args.output} "
                f"({len(class_names)} classes, {args.resolution} resolution, feature map "
                f"{'x'.join(map(str, models.feature_shape(model)[:2]))})", args.quiet)
            if args.weights is None:
                models.set_batch_norm_momentum(model)
            _training.sync_batch_norm(model, replicas)
            model.compile(optimizer=_training.optimizer(args.optimizer, args.learning_rate,
                                                        args.weights is not None),
                          loss=_training.loss(), metrics=["accuracy"],
                          **_training.compile_mode(args))
            _, final = _training.fit_and_save(
                model, train, val, args.epochs, args.output, callbacks,
                _common.verbose_level(args), class_names=list(class_names))
    _common.result(f"done: val_accuracy {final.get('val_accuracy', float('nan')):.3f}; model "
                   f"saved to {os.path.join(args.output, 'model.keras')}")
    return 0
