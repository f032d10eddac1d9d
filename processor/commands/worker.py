"""``headshots worker``: serve the job queue (the container's command), or check its health."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time


def _run(args: argparse.Namespace) -> int:
    from processor.dispatch import health_max_age_s, is_healthy
    from processor.logging import configure_logging
    from processor.settings import load_settings
    from processor.worker import require_worker_settings, serve

    settings = load_settings()
    if args.check_health:
        # The same checks as at start-up (SettingsError: exit 2 with the reason), then liveness.
        asyncio.run(require_worker_settings(settings))
        if settings.health_file is None:
            print("HEADSHOTS_HEALTH_FILE is not set", file=sys.stderr)
            return 2
        ok = is_healthy(settings.health_file, health_max_age_s(settings), time.time())
        return 0 if ok else 1
    configure_logging(settings)
    return asyncio.run(serve(settings, max_jobs=args.max_jobs, idle_exit_s=args.idle_exit))


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("worker", help="long-poll the job queue and run jobs, one at a time",
                              description=__doc__)
    p.add_argument("--check-health", action="store_true",
                   help="exit 0 if the worker's settings and link key are usable and its health file is "
                        "fresh (container HEALTHCHECK), 1 if stale, 2 with the reason if misconfigured")
    p.add_argument("--max-jobs", type=int, default=None, help="exit after this many finished jobs")
    p.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                   help="exit after this long without a message")
    p.set_defaults(handler=_run)
