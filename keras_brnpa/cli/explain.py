"""``brnpa explain``: explanation pictures of your images by any ``.keras`` classifier."""

import contextlib
import os
import sys

from keras_brnpa._json import write_json
from keras_brnpa.cli import _common
from keras_brnpa.cli import _data
from keras_brnpa.cli import _options
from keras_brnpa.cli._common import CLIError
from keras_brnpa.cli._common import UsageError

INDEX_FILE = "explanations.json"
TITLES = {"brnpa": "BR-NPA", "attention": "BR-NPA parts", "feature_norm": "feature norm",
          "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM",
          "eigencam": "Eigen-CAM", "ablationcam": "Ablation-CAM", "rise": "RISE"}

#: What each method's map measures (the colour bar's label).
QUANTITIES = {"brnpa": "BR-NPA: attention of part 1 x feature norm",
              "attention": "BR-NPA part attention",
              "feature_norm": "feature norm"}


def add_parser(commands):
    parser = commands.add_parser(
        "explain", help="explanation pictures of your images by any .keras classifier",
        description="Write one picture per image and method: the image beside its "
        "explanation map, with the predicted class, its probability and a colour bar (a "
        "legend of the parts for attention maps), at the image's own aspect ratio, at least "
        "512 px on the long side. OUTPUT/explanations.json lists every image's prediction "
        "and pictures. Output names mirror the inputs' relative paths; nothing is "
        "overwritten without --overwrite.")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (PNG, JPEG, BMP, GIF; 8 or 16 bits)")
    _options.add_model_options(parser)
    _options.add_methods_option(parser)
    parser.add_argument("--class-names", default=None,
                        help="a file (one name per line) or a comma-separated list; default: "
                        "the names recorded in the model's run folder, else class indices")
    parser.add_argument("--image-size", type=_common.positive_int, default=None,
                        help="input size when the model accepts any size (default 224)")
    parser.add_argument("--output", default=os.path.join("runs", "explain"),
                        help="folder of the pictures and explanations.json")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace pictures and explanations.json of an earlier run")
    parser.set_defaults(run=run)


def read_image(path):
    """An image file as float32 ``(H, W, 3)`` in [0, 1] at its own size.

    8-bit images are divided by 255, 16-bit ones (PIL modes ``I;16`` and
    ``I``) by 65535; grayscale is replicated to 3 channels; the alpha
    channel is dropped.
    """
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image, dtype="float64") / 65535.0
            array = np.repeat(np.clip(array, 0, 1)[..., None], 3, axis=-1)
        elif image.mode == "F":
            array = np.repeat(np.clip(np.asarray(image, "float64"), 0, 1)[..., None], 3, axis=-1)
        else:
            array = np.asarray(image.convert("RGB"), dtype="float64") / 255.0
    return array.astype("float32")


def output_names(images, methods, output):
    """``{(image, method): picture path}``, mirroring the inputs' relative paths."""
    absolute = [os.path.abspath(path) for path in images]
    root = os.path.commonpath([os.path.dirname(p) for p in absolute]) if absolute else ""
    names = {}
    for path, full in zip(images, absolute):
        stem = os.path.splitext(os.path.relpath(full, root))[0]
        for method in methods:
            names[(path, method)] = os.path.join(output, f"{stem}_{method.replace('+', 'p')}.png")
    return names


def run(args, callbacks=()):
    """``brnpa explain``: every option and file checked before anything is written.

    The output folder is claimed once the first image is explained (the
    model's errors come before it); a failure before the index is written
    leaves nothing behind.
    """
    missing = [path for path in args.images if not os.path.isfile(path)]
    if missing:
        raise UsageError(f"IMAGE: file not found: {', '.join(missing)}")
    if len(set(map(os.path.abspath, args.images))) != len(args.images):
        raise UsageError("IMAGE: the same file is given twice")
    keras = _common.import_keras()
    import numpy as np

    from keras_brnpa import explain
    from keras_brnpa import models
    from keras_brnpa import visualize
    from keras_brnpa._progress import progress

    model = _common.load_model(args.model)
    option = args.methods_option
    methods = _options.parse_methods(args.methods, model, option)
    _options.check_layer(args, model)
    class_names = _data.read_class_names(args.class_names, args.model)
    n_classes = model.output_shape[-1]
    if class_names is not None and len(class_names) != n_classes:
        raise UsageError(f"--class-names: {len(class_names)} names for a model with "
                         f"{n_classes} classes")
    targets = output_names(args.images, methods, args.output)
    index_path = os.path.join(args.output, INDEX_FILE)
    if not args.overwrite:
        taken = [p for p in list(targets.values()) + [index_path] if os.path.exists(p)]
        if taken:
            raise CLIError(f"--output: {len(taken)} file(s) of an earlier run exist "
                           f"({taken[0]}, ...); pass --overwrite to replace them, or choose "
                           "another --output")
    size = _common.model_image_size(model, args.image_size)
    from_logits = _options.FROM_LOGITS[args.from_logits]
    scale = models.input_scale(model) if args.input_scale == "auto" else args.input_scale
    options = _options.method_options(args)
    update = (lambda done: None) if args.quiet else progress(len(args.images))
    entries, failures = [], 0
    with contextlib.ExitStack() as claimed:
        for count, path in enumerate(args.images, start=1):
            try:
                original = read_image(path)
            except Exception as error:  # PIL raises OSError and others
                reason = getattr(error, "strerror", None) or _common.first_line(error)
                print(f"brnpa explain: error: IMAGE: cannot read {path}: {reason}",
                      file=sys.stderr)
                failures += 1
                continue
            resized = keras.ops.convert_to_numpy(keras.ops.image.resize(
                original[None], size, interpolation="bilinear", antialias=True))
            batch = models.scale_images(np.clip(resized, 0, 1), scale)
            outputs = np.asarray(model.predict_on_batch(batch), "float64")
            probabilities = outputs[0]
            if models.resolve_from_logits(model, from_logits, outputs):
                probabilities = np.exp(probabilities - probabilities.max())
                probabilities /= probabilities.sum()
            label = int(np.argmax(probabilities))
            name = class_names[label] if class_names else f"class {label}"
            maps = {}
            for method in methods:
                kwargs = dict(options.get(method, {}), class_index=label, from_logits=from_logits,
                              batch_size=args.batch_size, layer_name=args.layer)
                try:
                    maps[method] = explain.explain(method, model, batch, **kwargs)[0]
                except ValueError as error:
                    raise UsageError(f"{option} {method}: {_common.first_line(error)}") from None
            if not entries:  # the first result: now the folder is ours
                claimed.enter_context(_common.output_folder(args.output))
                _common.check_writable(args.output)
            entry = {"input": path, "class_index": label, "class_name": name,
                     "probability": float(probabilities[label]), "outputs": {}}
            for method in methods:
                target = targets[(path, method)]
                visualize.save_explanation(
                    target, original, maps[method],
                    title=f"{name} (p={probabilities[label]:.2f}) - {TITLES.get(method, method)}",
                    quantity=QUANTITIES.get(method, f"{TITLES.get(method, method)} saliency"))
                entry["outputs"][method] = target
            entries.append(entry)
            update(count)
        if not entries:
            raise CLIError(f"IMAGE: none of the {len(args.images)} image(s) could be read; "
                           "nothing written")
        _write_index(index_path, args, methods, entries)
    for entry in entries:
        _common.result(f"{entry['input']}: {entry['class_name']} "
                       f"(p={entry['probability']:.2f}) -> "
                       + ", ".join(entry["outputs"].values()))
    return _common.EXIT_ERROR if failures else 0


def _write_index(path, args, methods, entries):
    data = {"model": os.path.abspath(args.model), "methods": methods, "images": entries}
    write_json(path, data, sort_keys=False)
