"""The ``brnpa`` parser and entry point (nothing heavy imported here)."""

import os
import sys

from keras_brnpa.cli import _common
from keras_brnpa.cli import demo
from keras_brnpa.cli import distill
from keras_brnpa.cli import evaluate
from keras_brnpa.cli import explain
from keras_brnpa.cli import train
from keras_brnpa.cli._common import CLIError

COMMANDS = ("demo", "train", "distill", "explain", "evaluate")
_MODULES = {"demo": demo, "train": train, "distill": distill, "explain": explain,
            "evaluate": evaluate}


def build_parser():
    """The ``argparse`` parser of the ``brnpa`` command.

    Returns:
        An ``argparse.ArgumentParser``.

    Example:

    >>> from keras_brnpa import cli
    >>> args = cli.build_parser().parse_args(["train", "--epochs", "2"])
    >>> args.command, args.epochs, args.dataset
    ('train', 2, 'synthetic')
    """
    from keras_brnpa.version import __version__

    parser = _common.Parser(
        prog="brnpa",
        description="BR-NPA for Keras 3: train, distill, explain and evaluate image "
        "classifiers that explain themselves. 'brnpa COMMAND --help' for each command.")
    parser.add_argument("--version", action="version", version=f"keras_brnpa {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     parser_class=_common.Parser)
    commands.required = True
    for name in COMMANDS:
        _MODULES[name].add_parser(commands)
    return parser


def main(argv=None, callbacks=None):
    """Run the ``brnpa`` command line.

    Args:
        argv: list of arguments (default ``sys.argv[1:]``).
        callbacks: optional extra ``keras.callbacks.Callback`` objects for
            the training commands (``train``, ``distill``, ``demo``), for
            programmatic use.

    Returns:
        The exit status: 0 on success, 1 on an error, 2 on a usage error,
        130 when interrupted (rerun the same command to resume).

    Example:

    >>> from keras_brnpa import cli
    >>> cli.main(["train", "--backbone", "no-such-net", "--output", "/nonexistent/x"])
    2
    """
    argv_given = argv is not None
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    prefix = f"brnpa {command}" if command else "brnpa"
    try:
        args = build_parser().parse_args(argv)
    except CLIError as error:
        print(f"{prefix}: error: {error}", file=sys.stderr)
        return error.code
    except SystemExit as error:  # --help and --version
        return error.code if isinstance(error.code, int) else 0
    # argv=None: the process's own command line (the brnpa script), whose
    # standard error stays clear of native log lines until the process ends.
    with _common.native_stderr_hidden(restore=argv_given):
        with _common.package_warnings(prefix, getattr(args, "quiet", False)):
            return _run(args, callbacks, prefix)


def _run(args, callbacks, prefix):
    try:
        if args.command in ("train", "distill", "demo"):
            with _common.interrupts_reach_training() as stop:
                return args.run(args, callbacks=list(callbacks or ()) + [stop])
        return args.run(args, callbacks=callbacks or ())
    except CLIError as error:
        print(f"{prefix}: error: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted; run the same command again to resume from the last "
              "finished epoch", file=sys.stderr)
        return _common.EXIT_INTERRUPTED
    except Exception as error:
        if os.environ.get("BRNPA_DEBUG"):
            raise
        print(f"{prefix}: error: {type(error).__name__}: {_common.first_line(error)} "
              "(set BRNPA_DEBUG=1 for the traceback)", file=sys.stderr)
        return _common.EXIT_ERROR
