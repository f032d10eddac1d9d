"""Throughput and worker overhead on the embedded local stack.

1. Jobs per minute with 1, 2 and 4 worker processes on the tiny model (same jobs each time),
   and the runtime's own share of each job: wall time from claim to end minus the stages'
   own time (status.json timings).
2. The runtime's I/O for a full-size job, 20 photos of 4 MB in and 50 results of 1.5 MB out
   (plus presigned links and the status writes), through the worker's own code (aioboto3,
   bounded concurrency, conditional status writes), against the naive baseline measured in
   the same run: one boto3 call after another.

Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DEEPFACE_HOME", str(REPO / ".cache" / "deepface"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from processor.devkit.local_stack import LocalStack
from processor.devkit.profiles import fast_queue_settings, tiny_model_settings
from processor.settings import Settings  # noqa: E402
from tests.integration.harness import (  # noqa: E402
    Fleet,
    job_status,
    submit,
    wait_for,
    wait_for_state,
)

PHOTO_BYTES = 4 * 1024 * 1024
RESULT_BYTES = 1536 * 1024


def jobs_per_minute(stack: LocalStack, photos: Path, model: Path, root: Path, workers: int,
                    n_jobs: int) -> dict[str, Any]:
    settings = stack.provision(f"tp{workers}", **tiny_model_settings(model, root / "cache", num_images=4),
                               **fast_queue_settings(), email_backend="smtp", log_format="json")
    fleet = Fleet(stack, settings, root / f"w{workers}", [])
    jobs = [f"tp{workers}-{i}" for i in range(n_jobs)]
    try:
        for i in range(workers):
            fleet.start(f"w{i}")
        wait_for(lambda: all((root / f"w{workers}" / f"w{i}" / "health").exists() for i in range(workers)),
                 300, what="workers polling")
        started = time.monotonic()
        for job in jobs:
            submit(settings, photos, f"{job}@example.com", job)
        for job in jobs:
            wait_for_state(stack, settings, job, ["delivered"], 1200, fleet=fleet)
        wall = time.monotonic() - started
    finally:
        fleet.stop_all()
    overheads, stage_sums = [], []
    for job in jobs:
        status = job_status(stack, settings, job) or {}
        stages = sum((t["finished_at"] - t["started_at"]) for t in status["stages"].values())
        stage_sums.append(stages)
        overheads.append(status["updated_at"] - status["created_at"] - stages)
    return {"workers": workers, "jobs": n_jobs, "wall_s": round(wall, 1),
            "jobs_per_min": round(n_jobs / (wall / 60), 2),
            "stage_s_per_job": round(statistics.mean(stage_sums), 2),
            "overhead_s_per_job": round(statistics.mean(overheads), 2)}


async def worker_io(settings: Settings, photo_keys: list[str], results: list[Path], work: Path) -> float:
    """The runtime's transfers for one job, through its own code paths."""
    from processor.aws.storage import ObjectStore
    from processor.aws.transfers import download_many, upload_many
    from processor.job.state import JobState
    from processor.job.store import JobStore
    from processor.notify import EmailMarker

    started = time.perf_counter()
    async with ObjectStore(settings) as store:
        jobs = JobStore(store, settings.output_bucket, 60)
        claim = await jobs.claim("io-job", "bench", time.time())
        assert claim.runnable
        await download_many(store, settings.input_bucket, [(k, work / Path(k).name) for k in photo_keys])
        for state in (JobState.VALIDATING, JobState.TRAINING, JobState.GENERATING, JobState.DELIVERING):
            await jobs.update("io-job", lambda s, st=state: s.transition(st, time.time()).start_stage(st.value, time.time()))
            await jobs.update("io-job", lambda s, st=state: s.finish_stage(st.value, time.time()))
        await upload_many(store, settings.output_bucket, [(p, f"results/io-job/{p.name}") for p in results])
        for p in results:
            await store.presign_get(settings.output_bucket, f"results/io-job/{p.name}", 3600)
        await EmailMarker(store, settings.output_bucket, "io-job").claim("ready")
        await jobs.update("io-job", lambda s: s.transition(JobState.DELIVERED, time.time()))
    return time.perf_counter() - started


def boto3_io(stack: LocalStack, settings: Settings, photo_keys: list[str], results: list[Path],
             work: Path) -> float:
    """The naive baseline: the same transfers and writes, one blocking boto3 call after another."""
    s3 = stack.client("s3", settings)
    started = time.perf_counter()
    for key in photo_keys:
        (work / Path(key).name).write_bytes(s3.get_object(Bucket=settings.input_bucket, Key=key)["Body"].read())
    status = {"state": "received"}
    for _ in range(10):
        s3.put_object(Bucket=settings.output_bucket, Key="jobs/naive/status.json", Body=json.dumps(status).encode())
    for p in results:
        s3.put_object(Bucket=settings.output_bucket, Key=f"results/naive/{p.name}", Body=p.read_bytes())
    for p in results:
        s3.generate_presigned_url("get_object", Params={"Bucket": settings.output_bucket,
                                                        "Key": f"results/naive/{p.name}"}, ExpiresIn=3600)
    s3.put_object(Bucket=settings.output_bucket, Key="jobs/naive/email-sent", Body=b"{}")
    return time.perf_counter() - started


def io_overhead(stack: LocalStack, root: Path, rounds: int) -> dict[str, Any]:
    settings = stack.provision("tpio")
    s3 = stack.client("s3", settings)
    photo_keys = []
    for i in range(20):
        key = f"uploads/io-job/photo-{i:02d}.jpg"
        s3.put_object(Bucket=settings.input_bucket, Key=key, Body=os.urandom(PHOTO_BYTES))
        photo_keys.append(key)
    results_dir = root / "results"
    results_dir.mkdir(parents=True)
    results = []
    for i in range(50):
        p = results_dir / f"headshot-{i + 1:03d}.jpg"
        p.write_bytes(os.urandom(RESULT_BYTES))
        results.append(p)
    ours, naive = [], []
    for r in range(rounds):
        for folder in ("w", "b"):
            (root / f"{folder}{r}").mkdir()
        s3.delete_object(Bucket=settings.output_bucket, Key="jobs/io-job/status.json")
        s3.delete_object(Bucket=settings.output_bucket, Key="jobs/io-job/email-sent")
        ours.append(asyncio.run(worker_io(settings, photo_keys, results, root / f"w{r}")))
        naive.append(boto3_io(stack, settings, photo_keys, results, root / f"b{r}"))
    ours_s, naive_s = statistics.median(ours), statistics.median(naive)
    return {"photos_in": "20 x 4 MB", "results_out": "50 x 1.5 MB", "rounds": rounds,
            "worker_io_s": round(ours_s, 3), "sequential_boto3_s": round(naive_s, 3),
            "speedup_vs_sequential": round(naive_s / ours_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="jobs per worker count")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the I/O comparison")
    args = parser.parse_args()

    from handlers.faces import install_weights
    from processor.devkit.samples import build_person_set
    from processor.logging import configure_logging
    from tests.fixtures.models import ensure_tiny_model

    configure_logging("console", "WARNING")  # logs to stderr: stdout carries the one JSON line
    install_weights(Path(os.environ["DEEPFACE_HOME"]))
    model = ensure_tiny_model()
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        root = Path(tmp)
        photos = root / "photos"
        build_person_set(photos, n=12)
        with LocalStack(Settings(email_backend="smtp"), outbox=root / "outbox") as stack:
            io = io_overhead(stack, root / "io", args.rounds) if args.rounds else None
            runs = [jobs_per_minute(stack, photos, model, root, int(n), args.jobs)
                    for n in args.workers.split(",") if n]
    base = runs[0]["jobs_per_min"] if runs else None
    print(json.dumps({
        "bench": "throughput", "cpus": os.cpu_count(),
        "jobs_per_min": {str(r["workers"]): r["jobs_per_min"] for r in runs},
        "scaling_vs_1_worker": {str(r["workers"]): round(r["jobs_per_min"] / base, 2) for r in runs} if base else None,
        "runs": runs,
        "overhead_s_per_job": {str(r["workers"]): r["overhead_s_per_job"] for r in runs},
        "io_per_full_size_job": io,
    }))


if __name__ == "__main__":
    main()
