"""The ``headshots`` command line: one module per subcommand under ``processor.commands``.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``handler=callable(args) -> int``. Command modules import heavy libraries (torch, deepface)
inside their handler, so ``headshots --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: tuple[str, ...] = ("assets", "validate", "submit", "status", "worker", "demo", "serve", "eval", "metrics")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="headshots", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"processor.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Bad ``HEADSHOTS_*`` settings end any command the same way: one
    readable line per bad value on stderr and exit status 2, never a traceback."""
    from processor.settings import SettingsError

    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
