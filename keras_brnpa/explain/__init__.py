"""Explanation maps: BR-NPA attention and post-hoc saliency baselines.

Every function takes a batch of images ``(B, H, W, C)``, works in batches
of ``batch_size`` on every Keras backend and returns float32 NumPy arrays:
``(B, h, w)`` (one map per image) or ``(B, h, w, parts)``, at the feature
map's resolution unless ``upsample`` asks for the image size. Images and
feature maps are channels-last (the layout of ``build_classifier``).

- The model's own maps (``build_classifier`` models): ``attention_maps``,
  ``explanation_map``, ``feature_norm_map``.
- Post-hoc, on any functional or Sequential Keras classifier, at one of
  its layers (nested models included): ``grad_cam``, ``grad_cam_plus_plus``, ``score_cam``,
  ``eigen_cam``, ``ablation_cam``, ``hires_cam``, ``xgrad_cam``,
  ``layer_cam``; black-box: ``rise``.
- Attributions on the pixels ``(B, H, W, C)``: ``saliency``,
  ``smooth_grad``, ``integrated_gradients``.
- ``explain(method, model, images, **kwargs)`` picks one by name from
  ``METHODS``.

Example:

>>> import numpy as np, keras_brnpa
>>> model = keras_brnpa.models.build_classifier(
...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
>>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
>>> keras_brnpa.explain.explain("gradcam", model, images, upsample=True).shape
(2, 64, 64)
"""

from keras_brnpa.explain._utils import upsample
from keras_brnpa.explain.attention import attention_maps
from keras_brnpa.explain.attention import explanation_map
from keras_brnpa.explain.attention import feature_norm_map
from keras_brnpa.explain.cam import ablation_cam
from keras_brnpa.explain.cam import eigen_cam
from keras_brnpa.explain.cam import grad_cam
from keras_brnpa.explain.cam import grad_cam_plus_plus
from keras_brnpa.explain.cam import score_cam
from keras_brnpa.explain.attribution import integrated_gradients
from keras_brnpa.explain.attribution import saliency
from keras_brnpa.explain.attribution import smooth_grad
from keras_brnpa.explain.gradient_cams import hires_cam
from keras_brnpa.explain.gradient_cams import layer_cam
from keras_brnpa.explain.gradient_cams import xgrad_cam
from keras_brnpa.explain.perturbation import rise
from keras_brnpa._checks import invalid

#: Explanation methods by name (``explain`` also accepts the aliases in
#: ``ALIASES``). "brnpa" is the paper's map for any ``build_classifier``
#: head (see ``explanation_map``); "attention" returns all parts (4-D).
METHODS = {
    "brnpa": explanation_map,
    "attention": attention_maps,
    "feature_norm": feature_norm_map,
    "gradcam": grad_cam,
    "gradcam++": grad_cam_plus_plus,
    "hirescam": hires_cam,
    "xgradcam": xgrad_cam,
    "layercam": layer_cam,
    "scorecam": score_cam,
    "eigencam": eigen_cam,
    "ablationcam": ablation_cam,
    "rise": rise,
}

#: Other accepted spellings (compared after lower-casing and removing
#: ``-``, ``_`` and spaces).
ALIASES = {
    "gradcamplusplus": "gradcam++",
    "gradcampp": "gradcam++",
    "explanationmap": "brnpa",
    "attentionmaps": "attention",
    "parts": "attention",
    "featurenorm": "feature_norm",
    "norm": "feature_norm",
}

#: Keywords that every method of ``METHODS`` takes (each method's
#: docstring says which ones it does not use), so that one set of options
#: can be passed to any method.
COMMON_KEYWORDS = (
    "layer_name",
    "class_index",
    "batch_size",
    "upsample",
    "from_logits",
    "seed",
    "verbose",
)

#: The keywords of each method beyond ``COMMON_KEYWORDS``.
METHOD_KEYWORDS = {
    "gradcam": ("reshape_transform",),
    "gradcam++": ("reshape_transform",),
    "hirescam": ("reshape_transform",),
    "xgradcam": ("reshape_transform",),
    "layercam": ("reshape_transform",),
    "scorecam": ("max_channels", "reshape_transform"),
    "eigencam": ("reshape_transform",),
    "ablationcam": ("reshape_transform",),
    "rise": ("n_masks", "mask_size", "p"),
}


def method_name(method):
    """The ``METHODS`` key of a method name or alias.

    Case-insensitive; ``-``, ``_`` and spaces are ignored; aliases from
    ``ALIASES`` are accepted.

    Args:
        method: a name such as ``"Grad-CAM++"`` or ``"grad_cam"``.

    Returns:
        The key of ``METHODS``.

    Example:

    >>> import keras_brnpa
    >>> keras_brnpa.explain.method_name("Grad-CAM++")
    'gradcam++'
    """
    if not isinstance(method, str):
        raise invalid("method", method, "one of " + ", ".join(repr(m) for m in METHODS))
    key = method.lower().replace("-", "").replace("_", "").replace(" ", "")
    key = ALIASES.get(key, key)
    if key in METHODS:
        return key
    for name in METHODS:
        if name.replace("_", "") == key:
            return name
    raise invalid("method", method, "one of " + ", ".join(repr(m) for m in METHODS))


def default_method(model):
    """The method that explains ``model`` best by default: ``"brnpa"`` (the
    model's own map) for a BR-NPA or B-CNN head, ``"gradcam"`` otherwise.

    What ``methods="auto"`` of ``evaluation.compare_explanations`` and
    ``--methods auto`` of the command line pick.

    Args:
        model: any ``keras.Model``.

    Returns:
        A key of ``METHODS``.

    Example:

    >>> import keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="brnpa", input_shape=(64, 64, 3))
    >>> keras_brnpa.explain.default_method(model)
    'brnpa'
    """
    from keras_brnpa.models import head_kind

    return "brnpa" if head_kind(model) in ("brnpa", "bcnn") else "gradcam"


def explain(method, model, images, **kwargs):
    """Run the explanation method called ``method``.

    Args:
        method: a key of ``METHODS`` (``"brnpa"``, ``"attention"``,
            ``"feature_norm"``, ``"gradcam"``, ``"gradcam++"``,
            ``"hirescam"``, ``"xgradcam"``, ``"layercam"``, ``"scorecam"``, ``"eigencam"``, ``"ablationcam"``, ``"rise"``),
            case-insensitive, ``-``/``_`` ignored, or an alias
            (``"grad_cam_plus_plus"``, ``"parts"``, ...).
        model: the classifier (a ``build_classifier`` model for
            ``"brnpa"``, ``"attention"`` and ``"feature_norm"``).
        images: array ``(B, H, W, C)``.
        **kwargs: the method's arguments: any of ``COMMON_KEYWORDS``
            (``layer_name``, ``class_index``, ``batch_size``,
            ``upsample``, ``from_logits``, ``seed``, ``verbose``), which
            every method takes (each method's docstring says which ones it
            does not use: the attention maps do not depend on a class),
            and the method's own (``METHOD_KEYWORDS``:
            ``reshape_transform`` for the CAMs, ``max_channels`` for
            Score-CAM, ``n_masks``, ``mask_size``, ``p`` for RISE).
            Any other keyword raises a ``ValueError``.

    Returns:
        The method's NumPy array.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="brnpa", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.explain("Grad-CAM++", model, images).shape
    (2, 2, 2)
    >>> keras_brnpa.explain.explain("brnpa", model, images, class_index=0).shape
    (2, 2, 2)
    """
    name = method_name(method)
    accepted = COMMON_KEYWORDS + METHOD_KEYWORDS.get(name, ())
    for key in kwargs:
        if key not in accepted:
            raise invalid(key, kwargs[key], f"an argument of {METHODS[name].__name__}: "
                          + ", ".join(sorted(accepted)))
    return METHODS[name](model, images, **kwargs)


__all__ = [
    "ALIASES",
    "COMMON_KEYWORDS",
    "METHODS",
    "METHOD_KEYWORDS",
    "ablation_cam",
    "attention_maps",
    "default_method",
    "eigen_cam",
    "explain",
    "explanation_map",
    "feature_norm_map",
    "grad_cam",
    "grad_cam_plus_plus",
    "hires_cam",
    "integrated_gradients",
    "layer_cam",
    "method_name",
    "rise",
    "saliency",
    "score_cam",
    "smooth_grad",
    "upsample",
    "xgrad_cam",
]

