"""The ``phasejax`` command.

Each subcommand lives in ``phasejax/cli/<name>.py`` and exposes ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> (result: dict, table: str)``. This module only
dispatches: it turns bad input into one line on stderr and exit status 2, with no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .._checks import InputError

__all__ = ["build_parser", "main"]


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


def main(argv: list[str] | None = None) -> int:
    from ._common import emit

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result, table = args._run(args)
    except (InputError, OSError) as e:
        print(f"phasejax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"phasejax {args.command}: interrupted (finished cells are kept; rerun to resume)", file=sys.stderr)
        return 130
    emit(args, result, table)
    return 0
