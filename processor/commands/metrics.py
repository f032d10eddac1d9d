"""``headshots metrics``: the seed's online metrics from the output bucket.

Prints the distribution and mean of the ratings, download clicks per delivered job, and a
breakdown by the settings results.json records (model, method, steps, acceptance rate).
Reads ``jobs/*/status.json`` (which jobs were delivered), ``results/<job>/results.json``
(their settings, while the results are kept), ``feedback/`` (ratings) and ``clicks/`` (download
clicks, one per job, file and hour), both written by the front door. Operator credentials:
read access to the output bucket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any


async def collect(settings: object) -> Any:
    """Read the bucket and aggregate (:func:`processor.job.feedback.aggregate`)."""
    from processor.aws.storage import ObjectStore
    from processor.aws.transfers import bounded
    from processor.errors import NotFound
    from processor.job.feedback import (
        Rating,
        RunSettings,
        aggregate,
        parse_feedback_key,
    )
    from processor.job.state import JobState, JobStatus
    from processor.manifest import results_prefix
    from processor.settings import Settings

    assert isinstance(settings, Settings)
    bucket = settings.output_bucket
    async with ObjectStore(settings) as store:
        status_keys = [k for k in await store.list_keys(bucket, "jobs/") if k.endswith("/status.json")]

        async def delivered_job(key: str) -> str | None:
            try:
                status = JobStatus.from_json((await store.get_bytes(bucket, key)).body)
            except (NotFound, ValueError):
                return None
            return status.job_id if status.state is JobState.DELIVERED else None
        delivered = [j for j in await bounded([lambda k=k: delivered_job(k) for k in status_keys]) if j]

        async def run_of(job: str) -> RunSettings:
            try:
                return RunSettings.from_results((await store.get_json(bucket, results_prefix(job) + "results.json")).data)
            except (NotFound, ValueError):
                return RunSettings()
        runs = await bounded([lambda j=j: run_of(j) for j in delivered])

        clicks: dict[str, int] = {}
        rating_keys = []
        feedback_keys = await store.list_keys(bucket, "feedback/") + await store.list_keys(bucket, "clicks/")
        for key in feedback_keys:
            parsed = parse_feedback_key(key)
            if parsed is None:
                continue
            job, kind = parsed
            if kind == "click":
                clicks[job] = clicks.get(job, 0) + 1
            else:
                rating_keys.append(key)

        async def rating(key: str) -> Rating | None:
            try:
                return Rating.model_validate((await store.get_json(bucket, key)).data)
            except (NotFound, ValueError):
                return None
        ratings = [r for r in await bounded([lambda k=k: rating(k) for k in rating_keys]) if r]
    return aggregate(dict(zip(delivered, runs, strict=True)), ratings, clicks)


def _run(args: argparse.Namespace) -> int:
    from processor.logging import configure_logging
    from processor.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_format, "WARNING")
    from processor.job.feedback import render_metrics

    metrics = asyncio.run(collect(settings))
    print(json.dumps(metrics.as_dict(), indent=2) if args.json else render_metrics(metrics))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("metrics", help="ratings, download clicks and a breakdown by settings",
                              description=__doc__)
    p.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    p.set_defaults(handler=_run)
