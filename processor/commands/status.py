"""``headshots status JOB``: the job's state, progress and stage timings from status.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from processor.job.state import JobStatus


def format_status(status: JobStatus, now: float) -> str:
    """A few human lines: state, progress, per-stage seconds, error, results."""
    lines = [f"job {status.job_id}: {status.state.value} (attempt {status.attempts}, "
             f"updated {max(0.0, now - status.updated_at):.0f}s ago)"]
    if status.progress is not None:
        p = status.progress
        pct = f" {100 * p.step / p.total:.0f}%" if p.total else ""
        loss = f", loss {p.loss:.4f}" if p.loss is not None else ""
        lines.append(f"  progress: {p.stage} {p.step}/{p.total}{pct}{loss}")
    for name, timing in status.stages.items():
        seconds = f"{timing.seconds:.1f}s" if timing.seconds is not None else "running"
        runs = f" ({timing.runs} runs)" if timing.runs > 1 else ""
        lines.append(f"  {name}: {seconds}{runs}")
    if status.error:
        lines.append(f"  reason: {status.error}")
    if status.result:
        summary = status.result.get("summary") or {}
        lines.append(f"  results: {status.result.get('prefix')} ({len(status.result.get('files', []))} files, "
                     f"selection mode {summary.get('mode')})")
    return "\n".join(lines)


async def read_status(settings: object, job_id: str) -> JobStatus | None:
    from processor.aws.storage import ObjectStore
    from processor.job.store import JobStore
    from processor.settings import Settings

    assert isinstance(settings, Settings)
    async with ObjectStore(settings) as store:
        found = await JobStore(store, settings.output_bucket, settings.stale_after_s).get(job_id)
    return found[0] if found else None


async def watch(settings: object, job_id: str, interval_s: float = 2.0) -> JobStatus | None:
    """Follow the job with a progress bar until it reaches a terminal state."""
    from tqdm import tqdm

    bar = tqdm(total=0, file=sys.stderr, dynamic_ncols=True)
    try:
        while True:
            status = await read_status(settings, job_id)
            if status is not None:
                p = status.progress
                bar.set_description(f"{status.state.value}{' ' + p.stage if p else ''}")
                if p is not None and p.total:
                    bar.total, bar.n = p.total, p.step
                bar.refresh()
                if status.is_terminal:
                    return status
            await asyncio.sleep(interval_s)
    finally:
        bar.close()


def _run(args: argparse.Namespace) -> int:
    from processor.manifest import InvalidJobId, validate_job_id
    from processor.settings import load_settings

    settings = load_settings()
    try:
        job_id = validate_job_id(args.job)
    except InvalidJobId as exc:
        print(f"headshots status: {exc}", file=sys.stderr)
        return 2
    status = asyncio.run(watch(settings, job_id) if args.watch else read_status(settings, job_id))
    if status is None:
        print(f"job {job_id}: no status yet (not received by a worker, or unknown)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(json.loads(status.to_json())))
    else:
        print(format_status(status, time.time()))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("status", help="print a job's state and progress", description=__doc__)
    p.add_argument("job", help="the job id")
    p.add_argument("--json", action="store_true", help="print status.json as one JSON line")
    p.add_argument("--watch", action="store_true", help="follow with a progress bar until the job ends")
    p.set_defaults(handler=_run)
