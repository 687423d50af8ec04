"""``python -m keras_brnpa.cli``: the ``brnpa`` command without its script.

For an environment where the ``brnpa`` script is not on ``PATH`` (a
virtual environment that is not activated, a notebook's ``!python``):
``python -m keras_brnpa.cli demo`` runs ``brnpa demo``.
"""

import sys

from keras_brnpa.cli import main

if __name__ == "__main__":
    sys.exit(main())
