"""
The ``pyrf-blocks`` command.

Each subcommand lives in ``pyrf_blocks/commands/<name>.py`` with a ``HELP``
line, ``add_arguments(parser)`` and ``run(args) -> exit status``; list its
name in :data:`COMMANDS`.
"""

import argparse
import atexit
import gc
import importlib
import sys

__all__ = ["main", "COMMANDS"]

COMMANDS = ("demo", "view", "validate", "run", "worker", "discover", "emulate", "record",
            "manager", "status", "replay", "serve-pipelines", "query", "export")


class _Parser(argparse.ArgumentParser):
    """
    Reports a bad option or value in one line and exits 2.
    """

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(
        prog="pyrf-blocks",
        description="Processing blocks for RF instrument data.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=_Parser)
    subparsers.required = True
    from .commands import plain_text

    for name in COMMANDS:
        module = importlib.import_module(f"pyrf_blocks.commands.{name.replace('-', '_')}")
        sub = subparsers.add_parser(
            name, help=module.HELP, description=plain_text(module.__doc__),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv=None):
    # The interpreter's finalization collects cyclic garbage over the
    # whole heap several times, about 70 ms each once numpy, scipy, numba
    # and the rest are loaded: a command's process took 0.3-0.5 s to exit
    # after its work was done (worker after SIGTERM 0.30 s, demo 0.47-0.55
    # s, measured).  What is alive then dies with the process: frozen, it
    # is left out of those collections.  atexit handlers, weakref
    # finalizers and the closing of modules' files run as before (only
    # the last collections are cut); a caller of main() in its own process
    # gets the same at its exit.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:
        # The reader went away (``pyrf-blocks ... | head``): not an error.
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
