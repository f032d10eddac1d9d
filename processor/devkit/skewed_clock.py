"""Run a ``headshots`` command with this process's wall clock off by N seconds.

``python -m processor.devkit.skewed_clock -30 worker`` is a worker whose clock runs 30 s
behind: the fault suite runs two such workers on one job to show that no decision about who
owns a job reads a wall clock (:mod:`processor.clock`, the one wall clock the runtime reads;
only this dev-kit entry point ever sets its offset).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from processor import clock
    from processor.cli import main as cli

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m processor.devkit.skewed_clock OFFSET_S COMMAND [ARGS...]", file=sys.stderr)
        return 2
    clock.set_offset(float(args[0]))
    return cli(args[1:])


if __name__ == "__main__":
    sys.exit(main())
