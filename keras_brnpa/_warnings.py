"""The category of the package's own warnings (no Keras import).

Every warning keras_brnpa issues (a skipped corrupt image, a fallback to an
older backup, inputs in the wrong pixel range, a lock taken over) is a
``BRNPAWarning``, a ``UserWarning``: the ``brnpa`` command line shows
these, one line each, and hides other libraries' warnings.
"""


class BRNPAWarning(UserWarning):
    """A warning of keras_brnpa (a ``UserWarning``)."""
