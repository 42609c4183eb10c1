"""The ``phasejax`` command.

Each subcommand lives in ``phasejax/cli/<name>.py`` and exposes ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> (result: dict, table: str)``. This module only
dispatches: it turns bad input into one line on stderr and exit status 2, with no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from .._checks import InputError
from ._common import Progress as Progress
from ._common import count as count
from ._common import format_table as format_table
from ._common import positive_int as positive_int
from ._common import positive_real as positive_real
from ._common import seed as seed

# main and the parser; the argument types, progress bar and table of the commands, public for the experiments
__all__ = ["build_parser", "main", "Progress", "count", "format_table", "positive_int", "positive_real", "seed"]


# Subcommand modules in the order ``phasejax --help`` lists them.
_COMMAND_MODULES = (
    "scaling",
    "sweep",
    "theory",
    "limit_laws",
    "heat",
    "diagnose",
    "model",
    "schedules",
    "learn",
    "reproduce",
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the default prints the whole usage first)."""

    def error(self, message):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message}\n")


def _load_commands():
    return [importlib.import_module(f"phasejax.cli.{name}") for name in _COMMAND_MODULES]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="phasejax",
        description="Phase transition of softmax attention at long context (JAX testbed).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for mod in _load_commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


_SIGNALLED: list[int] = []


def _interrupt(signum, frame):
    _SIGNALLED.append(signum)  # remembered even if library code swallows the KeyboardInterrupt below
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; 0 on success, 2 on bad input (one line on stderr), 130 on SIGINT/SIGTERM.

    SIGINT and SIGTERM are handled from the first line: before the cells start they stop the run at once
    (exit 130; nothing is half-written, every file is atomic); while cells run, the current cell is finished and
    saved first (:func:`phasejax.runtime.deferred_signals`). The handlers are restored on return, so in-process
    callers keep theirs. The ``phasejax`` console script installs the same handlers before it imports JAX
    (``_phasejax_cli.py``), so the seconds of start-up are covered too.
    """
    command = "main"
    _SIGNALLED.clear()
    in_main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    try:
        from ._common import emit

        parser = build_parser()
        args = parser.parse_args(argv)
        command = args.command
        try:
            result, table = args._run(args)
        except (InputError, OSError) as e:
            print(f"phasejax {command}: error: {e}", file=sys.stderr)
            return 2
        emit(args, result, table)
        if _SIGNALLED:  # a signal was caught and swallowed on the way: the results are complete, but say so
            raise KeyboardInterrupt
        return 0
    except KeyboardInterrupt:
        print(f"phasejax {command}: interrupted (finished cells are kept; rerun to resume)", file=sys.stderr)
        return 130
    finally:
        for s, h in old.items():
            signal.signal(s, h)
