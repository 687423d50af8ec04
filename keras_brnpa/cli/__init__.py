"""The ``brnpa`` command line: demo, train, distill, explain, evaluate.

A thin shell over the library: it parses and checks the options, calls
``keras_brnpa.training``, ``keras_brnpa.evaluation``,
``keras_brnpa.datasets`` and ``keras_brnpa.explain``, and prints. Run
``brnpa --help`` or ``brnpa COMMAND --help`` (every option with its
default); the help answers at once, without loading a Keras backend.

Every command prints its progress on stdout; a user error prints ONE line
on stderr naming the option at fault and exits with status 1 (2 for a
usage error: a wrong option, an unknown method, a missing file), without a
traceback (``BRNPA_DEBUG=1`` shows it). Every option and input is checked
before the output folder is touched; a second command on the same output
folder is refused while the first runs. Training (``train``, ``distill``
and the models of ``demo``) saves its state at the end of every epoch:
after an interruption the same command resumes from the last finished
epoch. Nothing is overwritten without ``--overwrite``.

Example:

>>> from keras_brnpa import cli
>>> cli.main(["--version"])  # doctest: +ELLIPSIS
keras_brnpa ...
0
"""

from keras_brnpa.cli._common import EXIT_ERROR
from keras_brnpa.cli._common import EXIT_INTERRUPTED
from keras_brnpa.cli._common import EXIT_USAGE
from keras_brnpa.cli._common import CLIError
from keras_brnpa.cli._main import COMMANDS
from keras_brnpa.cli._main import build_parser
from keras_brnpa.cli._main import main

__all__ = [
    "COMMANDS",
    "CLIError",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "build_parser",
    "main",
]
