"""Version of the keras_brnpa package."""

__version__ = "0.1.0"
