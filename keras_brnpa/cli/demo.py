"""``brnpa demo``: the main job on the embedded data, with a report."""

import os
import time

from keras_brnpa.cli import _common
from keras_brnpa.cli import _training
from keras_brnpa.cli._common import UsageError
from keras_brnpa.cli._common import say

#: Sizes of the demo: the full run (``make demo``) and ``--smoke`` (tests).
SETTINGS = {
    # Measured (docs/distillation.md, docs/cli.md): more images rather than
    # more epochs (the small network overfits 3,000 images), Adam with a
    # cosine decay from 3e-3; the student distilled with the recipe
    # (distillation.RECIPE_DEFAULTS, not imported here: `brnpa --help`
    # imports no backend): T=1, alpha=0.1, from 3e-3.
    "full": {
        "image_size": 64, "num_images": 12000, "test_images": 120, "accuracy_images": 600,
        "num_classes": 5, "epochs": 10, "distill_epochs": 2, "batch_size": 32,
        "learning_rate": 3e-3, "distill_learning_rate": 3e-3, "temperature": 1.0,
        "alpha": 0.1,
        # Perturbation methods cost one forward pass per mask or channel and
        # image: 250 RISE masks, Score-CAM on the 32 most active channels.
        "rise_masks": 250, "rise_grid": 6, "score_channels": 32, "steps": 24, "gallery": 6,
        "common_grid": 8, "run_eagerly": False, "validation": True,
    },
    "smoke": {
        "image_size": 64, "num_images": 16, "test_images": 6, "accuracy_images": 6,
        "num_classes": 3, "epochs": 1, "distill_epochs": 1, "batch_size": 16,
        "learning_rate": 3e-3, "distill_learning_rate": 3e-3, "temperature": 1.0, "alpha": 0.1,
        "rise_masks": 16, "rise_grid": 4,
        "score_channels": 4, "steps": 3, "gallery": 3, "common_grid": 8,
        # Compiling a graph costs more than running 2 steps eagerly.
        "run_eagerly": True, "validation": False,
    },
}

#: The explanations of the report: (label, model, method).
PLAN = [
    ("BR-NPA (low res.)", "brnpa_low", "brnpa"),
    ("BR-NPA (high res.)", "brnpa_high", "brnpa"),
    ("B-CNN", "bcnn", "brnpa"),
    ("Grad-CAM", "cnn", "gradcam"),
    ("Grad-CAM++", "cnn", "gradcam++"),
    ("Score-CAM", "cnn", "scorecam"),
    ("RISE", "cnn", "rise"),
]


def add_parser(commands):
    parser = commands.add_parser(
        "demo", help="the main job on the embedded data: train, distill, explain, evaluate, report",
        description="Train a CNN, a B-CNN and a low-resolution BR-NPA teacher on the embedded "
        "synthetic data, distill the high-resolution BR-NPA student, compare their "
        "explanations with Grad-CAM, Grad-CAM++, Score-CAM and RISE, and write report.md, "
        "metrics.json and PNG galleries. Resumable: rerun the same command after an "
        "interruption.")
    parser.add_argument("--output", default=os.path.join("runs", "demo"), help="run folder")
    parser.add_argument("--smoke", action="store_true", help="a few seconds, tiny sizes (tests)")
    parser.add_argument("--image-size", type=_common.positive_int, default=None,
                        help="image side, a multiple of 32 (default 96; 64 with --smoke)")
    parser.add_argument("--epochs", type=_common.positive_int, default=None,
                        help="epochs per model (default 4; 1 with --smoke)")
    parser.add_argument("--num-images", type=_common.positive_int, default=None,
                        help="training images (default 3000; 16 with --smoke)")
    parser.add_argument("--batch-size", type=_common.positive_int, default=None,
                        help="images per batch (default 32; 16 with --smoke)")
    parser.add_argument("--seed", type=_common.seed, default=0, help="random seed")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(run=run)


def run_files():
    return _training.run_files() + (
        "models", "gallery_attention.png", "gallery_explanations.png", "deletion_curves.png",
        "gallery.png", "curves.png")


def _compile_mode(settings):
    if settings["run_eagerly"]:
        return {"run_eagerly": True, "jit_compile": False}
    return {"jit_compile": _training.jit_compile()}


def _train_one(name, model, data, epochs, args, callbacks):
    """Train one demo model resumably in ``output/models/<name>``."""
    from keras_brnpa import training

    folder = os.path.join(args.output, "models", name)
    path = os.path.join(folder, training.MODEL_FILE)
    if os.path.exists(path):
        say(f"{name}: already trained ({path})", args.quiet)
        return _common.load_model(path)
    target, _ = _training.fit_and_save(model, data["train"], data["val"], epochs, folder,
                                           callbacks, _common.verbose_level(args))
    return target


def run(args, callbacks=()):
    """``brnpa demo``: train four models, explain and score, write the report."""
    started = time.time()
    settings = dict(SETTINGS["smoke" if args.smoke else "full"])
    for key in ("image_size", "epochs", "num_images", "batch_size"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    settings["seed"] = args.seed
    if settings["image_size"] % 32:
        raise UsageError(f"--image-size: expected a multiple of 32, got {settings['image_size']}")
    keras = _common.import_keras()
    import numpy as np

    import keras_brnpa
    from keras_brnpa import datasets
    from keras_brnpa import evaluation
    from keras_brnpa import models
    from keras_brnpa import training
    from keras_brnpa.distillation import recipe_optimizer as adam_cosine

    size, k, batch = settings["image_size"], settings["num_classes"], settings["batch_size"]
    with _common.output_folder(args.output, resumable=True):
        resumed = _common.claim_run(args.output, "demo", settings, args.overwrite, run_files())
        say(("resuming" if resumed else "starting") + f" the demo in {args.output} (backend "
            f"{keras.config.backend()}, {size} px, {settings['num_images']} training images)",
            args.quiet)
        keras.utils.set_random_seed(args.seed)
        x, y, _ = datasets.synthetic_parts(settings["num_images"], size, k, seed=args.seed)
        vx, vy, _ = datasets.synthetic_parts(max(8, settings["num_images"] // 6), size, k,
                                             seed=args.seed + 1000)
        ax, ay, am = datasets.synthetic_parts(
            max(settings["accuracy_images"], settings["test_images"]), size, k,
            seed=args.seed + 2000)
        n_test = settings["test_images"]
        tx, ty, tm = ax[:n_test], ay[:n_test], am[:n_test]
        data = {"train": datasets.ArrayDataset(x, y, batch, shuffle=True, seed=args.seed),
                "val": datasets.ArrayDataset(vx, vy, batch) if settings["validation"] else None}
        say(f"[1/6] data: {len(x)} training, {len(vx)} validation, {len(ax)} test images",
            args.quiet)
        steps_per_epoch = len(data["train"])
        trained = {}
        for step, (name, head) in enumerate(
                (("cnn", "gap"), ("bcnn", "bcnn"), ("brnpa_low", "brnpa")), start=2):
            say(f"[{step}/6] training {name} (tiny ResNet, {head} head, {settings['epochs']} "
                "epochs)", args.quiet)
            model = models.build_classifier(k, backbone="tiny", head=head,
                                            input_shape=(size, size, 3), name=name)
            models.set_batch_norm_momentum(model)
            model.compile(optimizer=adam_cosine(settings["epochs"] * steps_per_epoch,
                                                settings["learning_rate"]),
                          loss=_training.loss(), metrics=["accuracy"],
                          **_compile_mode(settings))
            trained[name] = _train_one(name, model, data, settings["epochs"], args, callbacks)
        say(f"[5/6] distilling the high-resolution BR-NPA student "
            f"({settings['distill_epochs']} epochs)", args.quiet)
        student = _training.build_student(trained["brnpa_low"])
        distiller = keras_brnpa.Distiller(trained["brnpa_low"], student,
                                          temperature=settings["temperature"],
                                          alpha=settings["alpha"])
        distiller.compile(optimizer=adam_cosine(settings["distill_epochs"] * steps_per_epoch,
                                                settings["distill_learning_rate"]),
                          loss=_training.loss(), metrics=["accuracy"],
                          **_compile_mode(settings))
        distiller(x[:1])
        trained["brnpa_high"] = _train_one("brnpa_high", distiller, data,
                                           settings["distill_epochs"], args, callbacks)
        for model in trained.values():  # the inference mode of the metrics
            model.compile(**_compile_mode(settings))
        say(f"[6/6] explaining and scoring {len(tx)} test images", args.quiet)
        report = evaluation.compare_explanations(
            trained, tx, labels=ty, masks=tm, steps=settings["steps"], batch_size=batch,
            seed=args.seed, verbose=not args.quiet, class_names=datasets.class_names(k),
            methods=[(label, model, method) for label, model, method in PLAN],
            options={"rise": {"n_masks": settings["rise_masks"],
                              "mask_size": settings["rise_grid"]},
                     "scorecam": {"max_channels": settings["score_channels"]}},
            source={"data": "keras_brnpa.datasets.synthetic_parts (embedded)", "split": "test",
                    "split_detail": f"generated with seed {args.seed + 2000}, apart from the "
                    f"training (seed {args.seed}) and validation (seed {args.seed + 1000}) "
                    "images"})
        correct = {name: np.asarray(model.predict(ax, batch_size=2 * batch,
                                                  verbose=0)).argmax(-1) == ay
                   for name, model in trained.items()}
        write_report(args.output, report, trained, settings, keras.config.backend(),
                     time.time() - started, correct)
        training.finish_run(args.output)
    _common.result(f"done in {time.time() - started:.0f} s: "
                   f"{os.path.join(args.output, 'report.md')}")
    return 0


# ------------------------------------------------------------------ report
HEADS = {"cnn": "global average pooling", "bcnn": "B-CNN (learned maps)",
         "brnpa_low": "BR-NPA", "brnpa_high": "BR-NPA (distilled student)"}


def write_report(output, report, trained, settings, backend, seconds, correct):
    """The demo's report, written by ``evaluation.write_study``: the demo only
    describes its data and training."""
    from keras_brnpa import evaluation

    s = settings
    test_images = max(s["accuracy_images"], s["test_images"])
    intro = (
        f"Backend: `{backend}`. Embedded synthetic data (`keras_brnpa.datasets.synthetic_parts`): "
        f"{s['num_classes']} classes that differ only by the colour and shape of three small "
        f"part regions of an object, {s['image_size']} px images, {s['num_images']} training "
        f"images. Every model uses the tiny ResNet backbone trained from scratch, "
        f"{s['epochs']} epochs each (Adam, cosine decay from {s['learning_rate']}); the "
        f"high-resolution student is distilled for {s['distill_epochs']} epochs from the "
        f"low-resolution BR-NPA teacher (T={s['temperature']:g}, alpha={s['alpha']:g}, "
        f"cosine decay from {s['distill_learning_rate']:g}). "
        f"Accuracy on {test_images} test images (generated apart, never trained on); the "
        f"explanations on the first {s['test_images']} of them.")
    notes = [
        "Accuracy is that of the model the explanation comes from (the post-hoc methods all "
        f"explain the same plain CNN). DAUC/IAUC: {s['steps']} steps, probability of the "
        "predicted class; deletion paints the removed cells with each image's own mean colour "
        "(what the authors' 0 is on normalised inputs). The maps do not share a resolution "
        "(see the map column): finer maps delete or insert smaller, better aimed regions and "
        "can point more precisely, which favours RISE (pixel level) and the high-resolution "
        f"BR-NPA. RISE: {s['rise_masks']} masks on a {s['rise_grid']}x{s['rise_grid']} grid; "
        f"Score-CAM: the {s['score_channels']} most active channels per image.",
        f"These numbers come from {s['test_images']} test images and a few epochs of a tiny "
        "network trained from scratch on CPU: read the intervals and the p-values before "
        "a difference.",
    ]
    labels = [row["method"] for row in report.rows]
    verdicts = [(ours, other) for ours in ("BR-NPA (high res.)", "BR-NPA (low res.)")
                for other in labels if not other.startswith("BR-NPA")]
    verdicts.append(("BR-NPA (high res.)", "BR-NPA (low res.)"))
    evaluation.write_study(
        output, report, "# BR-NPA demo report", intro,
        models={name: {"head": HEADS.get(name, name), "correct": correct[name]}
                for name in trained},
        notes=notes, common_grid=s["common_grid"], verdicts=verdicts,
        attention={"BR-NPA low": trained["brnpa_low"], "BR-NPA high": trained["brnpa_high"],
                   "B-CNN": trained["bcnn"]},
        gallery_size=s["gallery"],
        extra={"settings": s, "backend": backend, "seconds": round(seconds, 1)})
