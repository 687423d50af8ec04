"""Data: the embedded synthetic "parts" set and TensorFlow Datasets loaders.

- ``synthetic_parts``: fine-grained images generated offline (classes differ
  only by small part regions of an object), with ground-truth part masks.
- ``synthetic_parts_dataset`` / ``as_dataset`` / ``ArrayDataset``: arrays
  ready for ``model.fit`` on every backend.
- ``image_folder``: your own images, one subfolder per class (the Keras
  convention), with optional ground-truth masks.
- ``synthetic_reid``: people (combinations of coloured clothes) seen by
  several cameras, split into train / query / gallery like Market-1501;
  ``market1501`` reads the real benchmark; ``IdentityBalancedDataset``
  draws P identities x K images per batch (triplet loss).
- ``synthetic_clutter``: a harder task, 10 classes of small digits among
  clutter (glyph fragments, strokes) at 64 px, with the digits' masks.
- ``synthetic_fewshot``: disjoint meta-train / meta-test classes of the
  parts data.
- ``load_tfds``: CUB-200-2011, Oxford pets, Stanford dogs, Cars196 (and
  other tfds sets by name) with the paper's preprocessing and masks/boxes.
- ``augmentation_layers`` / ``AugmentedDataset``: the BR-NPA authors'
  training augmentation (crop, flip, brightness and saturation jitter) for
  images already at the model's size, on the training batches only.
- ``preprocessing_layers`` / ``normalization_layer``: the paper's
  augmentation and the input normalisation as Keras preprocessing layers
  (``[0, 1]`` images by default, ``normalization="imagenet"`` for
  pretrained weights that expect it).
"""

from keras_brnpa.datasets.augmentation import AugmentedDataset
from keras_brnpa.datasets.augmentation import augmentation_layers
from keras_brnpa.datasets.image_folder import IMAGE_FORMATS
from keras_brnpa.datasets.image_folder import image_folder
from keras_brnpa.datasets.identity_sampler import IdentityBalancedDataset
from keras_brnpa.datasets.market1501 import MARKET1501_FOLDERS
from keras_brnpa.datasets.market1501 import market1501
from keras_brnpa.datasets.market1501 import parse_market1501_name
from keras_brnpa.datasets.pipeline import ArrayDataset
from keras_brnpa.datasets.pipeline import as_dataset
from keras_brnpa.datasets.pipeline import synthetic_parts_dataset
from keras_brnpa.datasets.preprocessing import IMAGENET_MEAN
from keras_brnpa.datasets.preprocessing import IMAGENET_STD
from keras_brnpa.datasets.preprocessing import NORMALIZATIONS
from keras_brnpa.datasets.preprocessing import normalization_layer
from keras_brnpa.datasets.preprocessing import preprocessing_layers
from keras_brnpa.datasets.synthetic import PART_COLOURS
from keras_brnpa.datasets.synthetic import PART_NAMES
from keras_brnpa.datasets.synthetic import PART_SHAPES
# class_names is public; it joins __all__ once docs/api/datasets.md lists it.
from keras_brnpa.datasets.synthetic import class_names  # noqa: F401
from keras_brnpa.datasets.synthetic import class_table
from keras_brnpa.datasets.synthetic import part_styles
from keras_brnpa.datasets.synthetic import synthetic_parts
from keras_brnpa.datasets.synthetic_clutter import DIGIT_GLYPHS
from keras_brnpa.datasets.synthetic_clutter import synthetic_clutter
from keras_brnpa.datasets.synthetic_fewshot import synthetic_fewshot
from keras_brnpa.datasets.synthetic_reid import REID_PART_NAMES
from keras_brnpa.datasets.synthetic_reid import synthetic_reid
from keras_brnpa.datasets.synthetic_reid import synthetic_reid_identities
from keras_brnpa.datasets.tfds_loaders import TFDS_DATASETS
from keras_brnpa.datasets.tfds_loaders import load_tfds
from keras_brnpa.datasets.tfds_loaders import preprocess

__all__ = [
    "ArrayDataset",
    "AugmentedDataset",
    "DIGIT_GLYPHS",
    "IdentityBalancedDataset",
    "MARKET1501_FOLDERS",
    "IMAGE_FORMATS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NORMALIZATIONS",
    "PART_COLOURS",
    "PART_NAMES",
    "PART_SHAPES",
    "TFDS_DATASETS",
    "as_dataset",
    "augmentation_layers",
    "class_table",
    "image_folder",
    "REID_PART_NAMES",
    "load_tfds",
    "market1501",
    "normalization_layer",
    "parse_market1501_name",
    "part_styles",
    "preprocess",
    "preprocessing_layers",
    "synthetic_clutter",
    "synthetic_parts",
    "synthetic_fewshot",
    "synthetic_parts_dataset",
    "synthetic_reid",
    "synthetic_reid_identities",
]
