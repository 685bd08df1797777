"""The ``asyncbatch`` command: ``demo``, ``run``, ``consume``, ``bench``.

Each subcommand lives in its own module of this package exposing
``add_parser(subparsers)``, which registers the subcommand and sets ``func`` (taking the
parsed args, returning an exit code). Only argparse is imported when the command starts:
a subcommand imports the engine, aioboto3 or matplotlib when it runs, and
``import asyncbatch`` never imports this package.

- ``demo`` (:mod:`asyncbatch.cli.demo`, its S3 part in :mod:`asyncbatch.cli.demo_s3`)
- ``run`` (:mod:`asyncbatch.cli.run`): Lambda's event source mapping, locally
- ``consume`` (:mod:`asyncbatch.cli.consume`): a record handler on an SQS queue, as a
  long-running worker
- ``bench`` (:mod:`asyncbatch.cli.bench`, the sweeps in :mod:`asyncbatch.bench`)
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from collections.abc import Sequence
from typing import Optional

__all__ = ["build_parser", "main"]

_SUBCOMMANDS = ("asyncbatch.cli.demo", "asyncbatch.cli.run", "asyncbatch.cli.consume",
                "asyncbatch.cli.bench")


def _version() -> str:
    from .. import __version__

    return f"asyncbatch {__version__} (Python {platform.python_version()})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asyncbatch", description="Concurrent, ordered processing of Lambda batches.",
        epilog="'asyncbatch COMMAND --help' describes a command's options.")
    parser.add_argument("--version", action="version", version=_version(),
                        help="print the version of asyncbatch and Python, and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMANDS:
        module = importlib.import_module(name)
        module.add_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit
    code: 0 done, 2 bad arguments or configuration, 130 interrupted (Ctrl-C), 141 output
    pipe closed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except BrokenPipeError:  # the reader went away (asyncbatch bench ... | head)
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return 141  # as a shell reports a pipeline member ended by SIGPIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
