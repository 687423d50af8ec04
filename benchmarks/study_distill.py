"""Study: does the distilled high-resolution student localise like the direct model?

On ``keras_brnpa.datasets.synthetic_clutter`` (small digits in clutter, 10
classes) and ``synthetic_parts`` (5 classes), both 64 px, for each seed,
trains with the tiny ResNet from scratch (BR-NPA head, 3 parts):

- the **teacher**: low resolution (2x2 maps), ``--teacher-epochs``;
- the **direct** model: high resolution (8x8 maps, stages 3 and 4 at
  stride 1), random start, ``--direct-epochs``;
- **students**: the teacher's high-resolution twin distilled from it
  (``keras_brnpa.Distiller``), one per ``--students`` setting
  ``start:T:alpha:epochs[:beta][:key=value ...]``: ``start`` is
  ``teacher`` (all the teacher's weights), ``backbone`` (the teacher's
  backbone, a fresh last layer) or ``random``; ``beta`` > 0 (or
  ``at=beta``) adds a feature-level term, attention transfer (Zagoruyko
  and Komodakis 2017) between the student's feature energy map pooled to
  the teacher's grid and the teacher's, weighted by ``beta``. Optional
  ``key=value`` fields: ``lr=`` the student's peak learning rate (default
  ``--student-lr``); feature terms at the *student's* resolution, each
  weighted by its value: ``energy=`` the teacher's feature energy map
  upsampled (bilinear) to the student's grid against the student's (both
  L2-normalised, squared distance), ``maps=`` the same for each of the
  teacher's part maps (BR-NPA attention maps), ``parts=`` the student's
  pooled part vectors against the teacher's (each part L2-normalised,
  squared distance; the BR-NPA representation itself).

and prints, per model, test accuracy, pointing game and energy in the
digit's bounding box (filled from its mask, as box ground truth; pointing
on the digit's pixels too, a harsher test for maps upsampled from 8x8) of
the model's own explanation map (part 1 x feature norm),
insertion AUC (IAUC) on ``--iauc-images`` test images, and the cost in
high-resolution epochs: a low-resolution epoch counts ``1 / --hi-cost``
(a high-resolution epoch of the tiny ResNet at 64 px costs about that many
low-resolution ones: the script prints the ratio it measured), a student
epoch ``1 + 1 / (3 * hi-cost)`` (the teacher's forward pass), plus the
teacher's epochs. Every model: Adam with a cosine decay to 0, batch 32,
batch-norm momentum 0.9. Not a timing: run it through the machine's job
queue like any training.

Usage::

    KERAS_BACKEND=tensorflow python benchmarks/study_distill.py
    python benchmarks/study_distill.py --data clutter --seeds 0 \\
        --students teacher:1:0.1:2 random:1:0.1:4
    python benchmarks/study_distill.py --data clutter --seeds 0 --cache runs/study \\
        --no-direct --students teacher:0:0:2:lr=3e-3 teacher:1:0.1:2:parts=0.1
    python benchmarks/study_distill.py --quick        # seconds: checks it runs

``--cache DIR`` saves the teacher and the direct model of each data set,
seed and epoch count there and loads them on the next run (same settings,
same models: only the students train); ``--no-direct`` skips the direct
model (its row was measured before). ``--data demo`` is the setting of
``brnpa demo`` (synthetic_parts, 12,000 training images, a 10-epoch
teacher, its 600 test images of seed + 2000); ``--pretrain
clutter:high:4`` trains the tiny ResNet on another data set first (there
at high resolution, 4 epochs) and starts the teacher's and the direct
model's backbones from its weights, a stand-in for a pretrained backbone::

    python benchmarks/study_distill.py --data demo --seeds 0 1 --no-direct \\
        --students teacher:1:0.1:2:lr=1e-3 teacher:1:0.1:2:lr=3e-3
    python benchmarks/study_distill.py --data parts --pretrain clutter:high:4 \\
        --teacher-epochs 4 --no-direct --students teacher:1:0.1:2:lr=3e-3
"""

import argparse
import os
import tempfile

import _common  # noqa: F401  (puts the repository on sys.path)
import keras
import numpy as np
from keras import ops

import keras_brnpa

#: Per data set: classes, training images, teacher and direct epochs (and,
#: where not the defaults, the generator, the test images and the test
#: data's seed offset). The low-resolution tiny ResNet learns
#: synthetic_clutter from 20,000 images or more (from 10,000 it memorised
#: them: training accuracy 0.28, test 0.17 after 10 epochs). ``demo`` is
#: the setting of ``brnpa demo`` / ``make demo`` (keras_brnpa/cli/demo.py):
#: synthetic_parts, 12,000 training images, a 10-epoch teacher, accuracy
#: on its 600 test images of seed + 2000.
DATA = {
    "clutter": dict(classes=10, train=20000, teacher_epochs=6, direct_epochs=4),
    "parts": dict(classes=5, train=9000, teacher_epochs=8, direct_epochs=4),
    "demo": dict(classes=5, train=12000, teacher_epochs=10, direct_epochs=4,
                 generator="parts", test_images=600, test_seed=2000),
}


#: The students of the study: start:T:alpha:epochs[:beta][:key=value ...].
STUDENTS = (
    "teacher:1:0.1:2",  # the recipe at --student-lr (RECIPE_DEFAULTS: lr=3e-3)
    "backbone:1:0.1:2",
    "random:1:0.1:2",
    "teacher:4:0.5:2",
    "teacher:1:0.1:4",
    "teacher:1:0.1:2:1",  # + attention transfer
)

#: The optional key=value fields of a student: the learning rate and the
#: weights of the feature terms (see the module docstring).
STUDENT_KEYS = ("lr", "at", "energy", "maps", "parts")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--train-images", type=int, default=None,
                        help="default per data set: clutter 20000, parts 9000")
    parser.add_argument("--test-images", type=int, default=None,
                        help="default 500 (600 for demo)")
    parser.add_argument("--iauc-images", type=int, default=100)
    parser.add_argument("--teacher-epochs", type=int, default=None,
                        help="default per data set: clutter 6, parts 8")
    parser.add_argument("--direct-epochs", type=int, default=None,
                        help="default per data set: clutter 6, parts 4")
    parser.add_argument("--lr", type=float, default=3e-3,
                        help="peak learning rate of the teacher and the direct model")
    parser.add_argument("--student-lr", type=float, default=1e-3,
                        help="students without lr=: default 1e-3, the recipe's until the "
                        "third study (RECIPE_DEFAULTS now: 3e-3), kept so that the commands "
                        "of docs/distillation.md's tables give the same rows")
    parser.add_argument("--students", nargs="*", default=list(STUDENTS),
                        help="start:T:alpha:epochs[:beta][:key=value ...] per student, "
                        f"keys {STUDENT_KEYS}")
    parser.add_argument("--hi-cost", type=float, default=1.2,
                        help="cost of a high-resolution epoch in low-resolution epochs "
                        "(tiny ResNet, 64 px, TensorFlow on CPU: 1.2; the run prints its own)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cache", default=None,
                        help="folder where the teacher and direct models are saved and reused")
    parser.add_argument("--no-direct", action="store_true",
                        help="skip the direct high-resolution model")
    parser.add_argument("--pretrain", default=None, metavar="DATA:RESOLUTION:EPOCHS",
                        help="a stand-in for a pretrained backbone: train the tiny ResNet on "
                        "another data set first (e.g. clutter:high:4, its training images "
                        "and seed) and start the teacher's (and the direct model's) backbone "
                        "from its weights; not counted in the cost")
    parser.add_argument("--quick", action="store_true", help="a tiny run to check that it works")
    args = parser.parse_args(argv)
    args.students = [parse_student(s) for s in args.students]
    if args.pretrain is not None:
        fields = args.pretrain.split(":")
        if (len(fields) != 3 or fields[0] not in DATA or fields[1] not in ("low", "high")
                or not fields[2].isdigit() or int(fields[2]) < 1):
            parser.error(f"--pretrain: expected DATA:RESOLUTION:EPOCHS with DATA in "
                         f"{list(DATA)}, RESOLUTION low or high, EPOCHS >= 1; got "
                         f"{args.pretrain!r}")
        args.pretrain = (fields[0], fields[1], int(fields[2]))
    if args.quick:
        args.train_images, args.test_images, args.iauc_images = 16, 8, 2
        args.teacher_epochs = args.direct_epochs = 1
        args.seeds, args.data = [0], ["parts"]
        if args.pretrain:
            args.pretrain = ("parts", args.pretrain[1], 1)
        args.students = [parse_student(
            "teacher:1:0.1:1:1:lr=2e-3:energy=0.1:maps=0.1:parts=0.1")]
    return args


def parse_student(text):
    """``(start, T, alpha, epochs, options)`` of ``start:T:alpha:epochs[:beta][:key=value ...]``.

    ``options`` maps each of ``STUDENT_KEYS`` to its value (``lr`` None
    when not given, each feature weight 0.0); a plain fifth field is the
    attention-transfer weight ``at``.
    """
    fields = text.split(":")
    options = {key: 0.0 for key in STUDENT_KEYS}
    options["lr"] = None
    ok = len(fields) >= 4 and fields[0] in keras_brnpa.distillation.STUDENT_INITS
    try:
        for i, field in enumerate(fields[4:]):
            key, _, value = field.rpartition("=")
            if not key and i == 0:
                key = "at"
            ok = ok and key in STUDENT_KEYS
            options[key] = float(value)
        start, temperature, alpha, epochs = fields[0], float(fields[1]), float(fields[2]), int(
            fields[3])
    except (ValueError, IndexError):
        ok = False
    if not ok:
        raise ValueError(
            "Invalid value for argument --students. Expected start:T:alpha:epochs[:beta]"
            f"[:key=value ...] with start in {keras_brnpa.distillation.STUDENT_INITS} and "
            f"keys in {STUDENT_KEYS}. Received: {text!r}"
        )
    return (start, temperature, alpha, epochs, options)


def student_name(start, temperature, alpha, epochs, options):
    """The table's name of a student; the settings of the first study keep their names."""
    name = f"student from {start}, T={temperature:g}, alpha={alpha:g}, {epochs} epochs"
    if options["lr"] is not None:
        name += f", lr={options['lr']:g}"
    if options["at"]:
        name += f", attention transfer beta={options['at']:g}"
    for key, words in (("energy", "energy upsampled"), ("maps", "part maps upsampled"),
                       ("parts", "part vectors")):
        if options[key]:
            name += f", {words} beta={options[key]:g}"
    return name


def energy_map(features):
    """Attention transfer's map: mean of the squared channels, L2-normalised."""
    q = ops.mean(ops.square(ops.cast(features, "float32")), axis=-1)
    q = ops.reshape(q, (ops.shape(q)[0], -1))
    return q / (ops.norm(q, axis=-1, keepdims=True) + 1e-6)


def heads_model(model):
    """A model sharing ``model``'s layers: logits, part maps, part vectors, features."""
    from keras_brnpa.models._heads import head_outputs
    from keras_brnpa.models.classifier import _parts

    backbone, head, tail, _ = _parts(model)
    inputs = keras.Input(tuple(model.input_shape[1:]))
    features = backbone(inputs)
    vectors, maps = head_outputs(head, features)
    logits = vectors
    for layer in tail:
        logits = layer(logits)
    return keras.Model(inputs, {"logits": logits, "maps": maps, "vectors": vectors,
                                "features": features})


def normalized_distance(student, teacher):
    """Mean over the batch (and parts) of ``|| s/|s| - t/|t| ||^2``, over the last axis."""
    def unit(v):
        v = ops.cast(v, "float32")
        return v / (ops.norm(v, axis=-1, keepdims=True) + 1e-6)
    return ops.mean(ops.sum(ops.square(unit(student) - unit(teacher)), axis=-1))


def upsample(maps, size):
    """Bilinear ``(B, h, w, P)`` -> ``(B, H, W, P)`` (half-pixel centres, as resize_maps)."""
    return ops.image.resize(ops.cast(maps, "float32"), size, interpolation="bilinear",
                            antialias=False)


class FeatureDistiller(keras_brnpa.Distiller):
    """``Distiller`` plus feature-level terms, each weighted by ``options[key]``.

    ``at``: attention transfer; the student's feature energy map is
    average-pooled to the teacher's grid (8x8 -> 2x2) before both are
    compared: the student is told where the teacher sees the object, not
    how coarsely. ``energy`` / ``maps``: the teacher's energy map / part
    maps upsampled to the student's grid; ``parts``: the part vectors.
    """

    def __init__(self, teacher, student, options, **kwargs):
        super().__init__(teacher, student, **kwargs)
        self.options = {key: float(options[key]) for key in ("at", "energy", "maps", "parts")}
        # Models sharing the layers of the teacher / student, with the
        # backbone's features, part maps and part vectors as outputs too.
        self.teacher_both = heads_model(teacher)
        self.student_both = heads_model(student)

    def call(self, inputs, training=None):
        out = self.student_both(inputs, training=training)
        self._student_out = out
        return out["logits"]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = super().compute_loss(x, y, y_pred, sample_weight, training)
        if not any(self.options.values()):
            return total
        student = self._student_out
        teacher = {key: ops.stop_gradient(value) for key, value in
                   self.teacher_both(x, training=False).items()}
        s_f, t_f = student["features"], teacher["features"]
        grid = tuple(s_f.shape[1:3])
        if self.options["at"]:
            factor = s_f.shape[1] // t_f.shape[1]
            pooled = ops.mean(ops.reshape(
                ops.square(ops.cast(s_f, "float32")),
                (-1, t_f.shape[1], factor, t_f.shape[2], factor, s_f.shape[-1])),
                axis=(2, 4))
            q_s = energy_map(ops.sqrt(pooled + 1e-12))
            q_t = energy_map(t_f)
            total = total + self.options["at"] * ops.mean(ops.sum(ops.square(q_s - q_t), -1))
        if self.options["energy"]:
            e_s = ops.mean(ops.square(ops.cast(s_f, "float32")), axis=-1)
            e_t = upsample(ops.mean(ops.square(ops.cast(t_f, "float32")), axis=-1,
                                    keepdims=True), grid)[..., 0]
            flat = (-1, grid[0] * grid[1])
            total = total + self.options["energy"] * normalized_distance(
                ops.reshape(e_s, flat), ops.reshape(e_t, flat))
        if self.options["maps"]:
            # (B, H, W, P) -> (B, P, H*W): one distribution per part.
            def per_part(maps):
                maps = ops.transpose(ops.cast(maps, "float32"), (0, 3, 1, 2))
                return ops.reshape(maps, (-1, maps.shape[1], grid[0] * grid[1]))
            total = total + self.options["maps"] * normalized_distance(
                per_part(student["maps"]), per_part(upsample(teacher["maps"], grid)))
        if self.options["parts"]:
            channels = s_f.shape[-1]
            total = total + self.options["parts"] * normalized_distance(
                ops.reshape(student["vectors"], (-1, student["vectors"].shape[-1] // channels,
                                                 channels)),
                ops.reshape(teacher["vectors"], (-1, teacher["vectors"].shape[-1] // channels,
                                                 channels)))
        return total


def classifier(classes, resolution, name):
    model = keras_brnpa.models.build_classifier(
        classes, backbone="tiny", head="brnpa", resolution=resolution,
        input_shape=(64, 64, 3), name=name)
    keras_brnpa.models.set_batch_norm_momentum(model)
    return model


def student_of(teacher, start, path):
    if start == "backbone":  # the teacher's backbone, a fresh last layer
        teacher.get_layer("backbone").save_weights(path)
        return keras_brnpa.distillation.build_high_resolution_student(
            teacher, init="backbone", backbone_weights=path)
    return keras_brnpa.distillation.build_high_resolution_student(teacher, init=start)


def evaluate(model, test, iauc_images):
    tx, ty, masks = test
    logits = model.predict(tx, batch_size=100, verbose=0)
    maps = keras_brnpa.explain.explanation_map(model, tx, batch_size=100)
    n = min(iauc_images, len(tx))
    iauc = keras_brnpa.metrics.insertion_auc(model, tx[:n], maps[:n], batch_size=256)
    boxes = bounding_boxes(masks)
    return {
        "accuracy": float(np.mean(np.argmax(logits, -1) == ty)),
        "pointing": float(np.mean(keras_brnpa.metrics.pointing_game(maps, boxes))),
        "energy": float(np.nanmean(keras_brnpa.metrics.energy_in_mask(maps, boxes))),
        "pointing_pixels": float(np.mean(keras_brnpa.metrics.pointing_game(maps, masks))),
        "iauc": float(np.mean(iauc)),
    }


def bounding_boxes(masks):
    """Each mask's bounding box, filled: boolean ``(B, H, W)``."""
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    first_r, last_r = rows.argmax(1), rows.shape[1] - 1 - rows[:, ::-1].argmax(1)
    first_c, last_c = cols.argmax(1), cols.shape[1] - 1 - cols[:, ::-1].argmax(1)
    r, c = np.arange(masks.shape[1]), np.arange(masks.shape[2])
    in_r = (r >= first_r[:, None]) & (r <= last_r[:, None])
    in_c = (c >= first_c[:, None]) & (c <= last_c[:, None])
    return in_r[:, :, None] & in_c[:, None, :]


def trained_on(args, data, seed, x, y, classes, name, resolution, epochs, pretrained):
    """A model trained on ``x, y`` (or loaded from ``--cache``), the seconds it took.

    ``pretrained``: a trained classifier whose backbone weights the model
    starts from (``--pretrain``), or ``None``.
    """
    tag = "" if pretrained is None else "-pre-" + "-".join(str(f) for f in args.pretrain)
    path = args.cache and os.path.join(
        args.cache, f"{data}-seed{seed}-{name}-{epochs}ep-{len(x)}{tag}.keras")
    if path and os.path.exists(path):
        print(f"LOADED {path}", flush=True)
        return keras.models.load_model(path), float("nan")
    keras.utils.set_random_seed(seed)
    model = classifier(classes, resolution, name)
    if pretrained is not None:
        model.get_layer("backbone").set_weights(pretrained.get_layer("backbone").get_weights())
    seconds = _common.fit_cosine(model, x, y, epochs, args.lr, args.batch_size, args.quick)
    print(f"TRAINED data={data} seed={seed} {name} {resolution} {epochs} epochs{tag} "
          f"in {seconds:.0f} s", flush=True)
    if path:
        os.makedirs(args.cache, exist_ok=True)
        model.save(path)
    return model, seconds


def run(data, seed, args, results):
    spec = DATA[data]
    classes = spec["classes"]
    n_train = args.train_images or spec["train"]
    teacher_epochs = args.teacher_epochs or spec["teacher_epochs"]
    direct_epochs = args.direct_epochs or spec["direct_epochs"]
    generate = getattr(keras_brnpa.datasets, f"synthetic_{spec.get('generator', data)}")
    x, y, _ = generate(n_train, 64, classes, seed=seed)
    test = generate(args.test_images or spec.get("test_images", 500), 64, classes,
                    seed=seed + spec.get("test_seed", 1000))

    def record(name, model, cost, seconds):
        if args.pretrain:
            name += (", backbone pretrained on {} ({} resolution, {} epochs)"
                     .format(*args.pretrain))
        scores = evaluate(model, test, args.iauc_images)
        scores.update(cost=cost, seconds=seconds)
        results.setdefault((data, name), {})[seed] = scores
        print(f"RESULT data={data} seed={seed} model={name!r} "
              + " ".join(f"{k}={v:.4f}" for k, v in scores.items()), flush=True)

    pretrained = None
    if args.pretrain:
        pre_data, pre_resolution, pre_epochs = args.pretrain
        pre_spec = DATA[pre_data]
        pre_n = args.train_images or pre_spec["train"]
        pre_x, pre_y, _ = getattr(
            keras_brnpa.datasets, f"synthetic_{pre_spec.get('generator', pre_data)}")(
                pre_n, 64, pre_spec["classes"], seed=seed)
        pretrained, _ = trained_on(
            args, pre_data, seed, pre_x, pre_y, pre_spec["classes"],
            f"pretrain-{pre_resolution}", pre_resolution, pre_epochs, None)
        del pre_x, pre_y

    def trained(name, resolution, epochs):
        """The model trained (or loaded from ``--cache``) and the seconds it took."""
        return trained_on(args, data, seed, x, y, classes, name, resolution, epochs, pretrained)

    teacher, seconds = trained("teacher", "low", teacher_epochs)
    teacher_cost = teacher_epochs / args.hi_cost
    record(f"teacher, low resolution, {teacher_epochs} epochs", teacher, teacher_cost, seconds)
    low_epoch = seconds / teacher_epochs

    if not args.no_direct:
        direct, seconds = trained("direct", "high", direct_epochs)
        print(f"MEASURED data={data} seed={seed} high/low epoch time="
              f"{seconds / direct_epochs / low_epoch:.2f}", flush=True)
        record(f"direct, high resolution, {direct_epochs} epochs", direct,
               float(direct_epochs), seconds)

    for start, temperature, alpha, epochs, options in args.students:
        keras.utils.set_random_seed(seed)
        student = student_of(teacher, start, os.path.join(
            tempfile.mkdtemp(), "teacher_backbone.weights.h5"))
        distiller = FeatureDistiller(teacher, student, options, temperature=temperature,
                                     alpha=alpha)
        lr = args.student_lr if options["lr"] is None else options["lr"]
        seconds = _common.fit_cosine(distiller, x, y, epochs, lr, args.batch_size, args.quick)
        cost = teacher_cost + epochs * (1 + 1 / (3 * args.hi_cost))
        record(student_name(start, temperature, alpha, epochs, options), student, cost, seconds)


def main(argv=None):
    args = parse_args(argv)
    print(_common.header("study_distill", data="+".join(args.data), seeds=args.seeds,
                         test=args.test_images, iauc_images=args.iauc_images,
                         student_lr=args.student_lr, lr=args.lr, pretrain=args.pretrain))
    results = {}
    for data in args.data:
        for seed in args.seeds:
            run(data, seed, args, results)
    seeds = ", ".join(str(s) for s in args.seeds)
    keys = ("accuracy", "pointing", "energy", "pointing_pixels", "iauc")
    columns = ["data", "model", "cost (high-res epochs)"] + [
        f"{key} (seeds {seeds})" for key in (
            "accuracy", "pointing (box)", "energy in box", "pointing (digit's pixels)", "IAUC")]
    rows = []
    for (data, name), per_seed in results.items():
        values = [per_seed[s] for s in args.seeds if s in per_seed]
        cells = [" / ".join(f"{v[key]:.3f}" for v in values)
                 for key in keys]
        rows.append([data, name, f"{values[0]['cost']:.1f}"] + cells)
    print()
    _common.print_table(columns, rows)


if __name__ == "__main__":
    main()
