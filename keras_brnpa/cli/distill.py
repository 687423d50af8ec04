"""``brnpa distill``: distill a low-resolution teacher into its high-resolution twin."""

import os

from keras_brnpa.cli import _common
from keras_brnpa.cli import _data
from keras_brnpa.cli import _options
from keras_brnpa.cli import _training
from keras_brnpa.cli._common import UsageError
from keras_brnpa.cli._common import say


def add_parser(commands):
    parser = commands.add_parser(
        "distill", help="distill a trained low-resolution model into its high-resolution twin",
        description="Train the high-resolution twin of a classifier (strides of the last "
        "two stages set to 1, 4x finer maps) as the student of the trained low-resolution "
        "teacher (keras_brnpa.Distiller). Resumable like train.")
    _options.add_data_options(parser, image_size=None)
    _options.add_training_options(parser, epochs=2, distill=True)
    parser.add_argument("--teacher", required=True, help="the teacher's .keras file")
    # Defaults: keras_brnpa.distillation.RECIPE_DEFAULTS, read in run() (importing
    # keras_brnpa.distillation here would import a backend for --help).
    parser.add_argument("--temperature", type=_common.positive_float, default=None,
                        help="softmax temperature of the distillation loss (default: the "
                        "measured recipe, distillation.RECIPE_DEFAULTS, docs/distillation.md)")
    parser.add_argument("--alpha", type=_common.unit_float, default=None,
                        help="weight of the distillation term, 1 - alpha: the labels "
                        "(default: distillation.RECIPE_DEFAULTS)")
    parser.add_argument("--output", default=os.path.join("runs", "distill"), help="run folder")
    parser.set_defaults(run=run)


def run(args, callbacks=()):
    """``brnpa distill``: validate, load, build, then claim the folder and fit."""
    _data.check_data_options(args)
    keras = _common.import_keras()
    import keras_brnpa

    teacher = _common.load_model(args.teacher, option="--teacher")
    teacher_size = tuple(teacher.input_shape[1:3])
    if args.image_size is None:
        args.image_size = teacher_size[0] if teacher_size[0] else 64
    if None not in teacher_size and teacher_size != (args.image_size, args.image_size):
        raise UsageError(f"--image-size {args.image_size}: the teacher takes "
                         f"{teacher_size[0]}x{teacher_size[1]} images; use --image-size "
                         f"{teacher_size[0]} (the default: the teacher's size)")
    recipe = keras_brnpa.distillation.RECIPE_DEFAULTS
    if args.temperature is None:
        args.temperature = recipe["temperature"]
    if args.alpha is None:
        args.alpha = recipe["alpha"]
    # Without --optimizer: the recipe's Adam with a cosine decay (from
    # --learning-rate if given) over the run's steps, as distill() does.
    use_recipe_optimizer = args.optimizer is None
    if use_recipe_optimizer:
        args.optimizer = recipe["optimizer"]
        args.learning_rate = args.learning_rate or recipe["learning_rate"]
    _training.resolve_optimizer(args, pretrained=True)
    keras.utils.set_random_seed(args.seed)
    train, val, class_names = _data.load_training_data(args)
    if teacher.output_shape[-1] != len(class_names):
        raise UsageError(f"--teacher: the teacher has {teacher.output_shape[-1]} classes but the "
                         f"data has {len(class_names)}")
    with _training.distribution(args.distribute) as replicas:
        try:
            student = _training.build_student(teacher)
        except ValueError as error:
            raise UsageError(f"--teacher: {_common.first_line(error)}") from None
        distiller = keras_brnpa.Distiller(teacher, student, temperature=args.temperature,
                                          alpha=args.alpha)
        sample = train.x[:1] if hasattr(train, "x") else next(iter(train))[0][:1]
        try:
            distiller(sample)
        except ValueError as error:
            raise UsageError(f"--teacher: {_common.first_line(error)}") from None
        config = _training.config_of(args, _training.DATA_KEYS + ("temperature", "alpha"))
        config["teacher"] = os.path.abspath(args.teacher)
        config["schedule"] = ("cosine decay to 0 over the run's steps" if use_recipe_optimizer
                              else "constant")
        with _common.output_folder(args.output, resumable=True):
            resumed = _common.claim_run(args.output, "distill", config, args.overwrite,
                                        _training.run_files())
            say(("resuming" if resumed else "starting") + f" distillation in {args.output}",
                args.quiet)
            _training.sync_batch_norm(student, replicas)
            if use_recipe_optimizer:
                optimizer = keras_brnpa.distillation.recipe_optimizer(
                    args.epochs * len(train), args.learning_rate)
            else:
                optimizer = _training.optimizer(args.optimizer, args.learning_rate, True)
            distiller.compile(
                optimizer=optimizer,
                loss=_training.loss(), metrics=["accuracy"], **_training.compile_mode(args))
            _, final = _training.fit_and_save(
                distiller, train, val, args.epochs, args.output, callbacks,
                _common.verbose_level(args), class_names=list(class_names))
    _common.result(f"done: val_accuracy {final.get('val_accuracy', float('nan')):.3f}; student "
                   f"saved to {os.path.join(args.output, 'model.keras')}")
    return 0
