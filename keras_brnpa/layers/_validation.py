"""Argument checks shared by the layers (Keras-style error messages)."""

import numbers


def invalid(name, value, expected):
    """Return a ``ValueError`` in the Keras style for argument ``name``."""
    return ValueError(
        f"Invalid value for argument {name}. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


def check_positive_int(name, value):
    """Validate that ``value`` is an integer >= 1 (bools are rejected)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise invalid(name, value, "an integer >= 1")
    return int(value)


def check_choice(name, value, choices):
    """Validate that ``value`` is one of ``choices``."""
    if value not in choices:
        raise invalid(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_data_format(value):
    """Resolve ``data_format`` (``None`` = the Keras global setting)."""
    import keras

    if value is None:
        return keras.config.image_data_format()
    return check_choice("data_format", value, ("channels_last", "channels_first"))
