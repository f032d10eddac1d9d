"""Drive the service from outside, as an operator would: worker child processes, uploads, and
read-only looks at S3, SQS and the outbox.

Used by the end-to-end and fault suites and by ``bench/faults.py`` / ``bench/throughput.py``.
Workers are real processes (``python -m processor.cli worker``) pointed at the local stack
through their environment only, so ``kill -9`` and SIGTERM are the real thing. A fleet may run
behind a fault proxy (every worker's AWS calls through it, each job write audited against the
job's lease) and may skew a worker's wall clock (``processor.devkit.skewed_clock``). A worker
that ends without being asked (not killed, stopped or told to by a failpoint) is counted.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processor.devkit.fault_proxy import FaultProxy
from processor.devkit.local_stack import LocalStack
from processor.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """``python -m processor.cli worker`` with its own environment and log file.

    ``clock_offset_s``: run it through ``processor.devkit.skewed_clock`` (its wall clock off by
    that much). ``asked`` turns true once anything here stops it (or its failpoints may kill it):
    an exit before that is a worker that died on its own."""

    def __init__(self, env: dict[str, str], log_path: Path, args: Iterable[str] = (),
                 clock_offset_s: float | None = None) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        points = env.get("HEADSHOTS_FAILPOINTS", "")
        self.asked = "=kill" in points or "=exit" in points
        #: (frozen, resumed) wall times of its SIGSTOPs: a frozen owner is not a live one
        self.pauses: list[list[float]] = []
        entry = ["processor.cli"] if clock_offset_s is None else ["processor.devkit.skewed_clock", str(clock_offset_s)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *entry, "worker", *args],
            cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def exited_unasked(self) -> bool:
        """It ended while nobody had asked it to (killed, stopped, or a kill failpoint)."""
        return not self.alive and not self.asked

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no handler runs, no checkpoint is written, the message is not released."""
        self.asked = True
        if self.alive:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    @property
    def paused(self) -> bool:
        """Stopped by SIGSTOP (a ``pause`` failpoint): state ``T`` in /proc/<pid>/stat."""
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")

    def wait_paused(self, timeout: float) -> None:
        wait_for(lambda: self.paused or not self.alive, timeout, interval=0.05,
                 what=f"worker {self.pid} to pause", on_timeout=self.logs)
        if not self.alive:
            raise RuntimeError(f"worker exited ({self.proc.returncode}) instead of pausing:\n{self.logs()[-4000:]}")
        self.pauses.append([time.time(), float("inf")])

    def resume(self) -> None:
        if self.pauses and self.pauses[-1][1] == float("inf"):
            self.pauses[-1][1] = time.time()
        os.kill(self.proc.pid, signal.SIGCONT)

    def terminate(self) -> None:
        self.asked = True
        if self.alive:
            os.kill(self.proc.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Test teardown: SIGTERM, then SIGKILL if it lingers."""
        self.asked = True
        if self.alive:
            self.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._log.close()

    def logs(self) -> str:
        """Everything the worker wrote, also after :meth:`stop` closed our end of its log."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The worker's JSON log lines, parsed (other lines skipped)."""
        out = []
        for line in self.logs().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


def worker_env(stack: LocalStack, settings: Settings, work_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker process on ``settings`` (its own work and class-cache dirs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSHOTS_")}
    env.update(stack.settings_env(settings))
    env.update({
        "HEADSHOTS_WORK_DIR": str(work_dir / "work"),
        "HEADSHOTS_CLASS_CACHE_DIR": str(work_dir / "class-images"),
        "HEADSHOTS_HEALTH_FILE": str(work_dir / "health"),
        "HEADSHOTS_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TQDM_DISABLE": "1",
    })
    env.update(extra)
    return env


@dataclass
class Fleet:
    """Worker processes of one test; all stopped at teardown. With ``proxy``, every worker's
    AWS calls go through it (unless a worker is given its own endpoint)."""

    stack: LocalStack
    settings: Settings
    root: Path
    workers: list[WorkerProcess]
    proxy: FaultProxy | None = None

    def start(self, name: str | None = None, args: Iterable[str] = (), clock_offset_s: float | None = None,
              **extra_env: str) -> WorkerProcess:
        name = name or f"w{len(self.workers) + 1}"
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        if self.proxy is not None:
            extra_env.setdefault("HEADSHOTS_AWS_ENDPOINT_URL", self.proxy.url)
        worker = WorkerProcess(worker_env(self.stack, self.settings, folder, **extra_env),
                               folder / "worker.log", args, clock_offset_s)
        self.workers.append(worker)
        return worker

    def pauses(self) -> dict[str, list[list[float]]]:
        """Each worker name's SIGSTOP intervals (wall time)."""
        found: dict[str, list[list[float]]] = {}
        for w in self.workers:
            found.setdefault(w.log_path.parent.name, []).extend(w.pauses)
        return found

    def unasked_exits(self) -> int:
        """Worker processes that ended without being asked to (an SQS outage must not do it)."""
        return sum(1 for w in self.workers if w.exited_unasked)

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop()

    def work_dir(self, name: str) -> Path:
        """The local job folders of worker ``name`` (one "instance disk" per name)."""
        return self.root / name / "work"

    def leftover_job_dirs(self) -> list[Path]:
        """Job folders still on any worker's disk (after the job ended, none may remain)."""
        return sorted(d for w in self.root.glob("*/work") for d in w.iterdir()) if self.root.exists() else []

    def all_events(self) -> list[dict[str, Any]]:
        """Every worker's log lines once (a worker restarted under a name shares its log file),
        each tagged ``_worker`` with the name it was started under."""
        seen = {w.log_path: w for w in self.workers}
        return [{**e, "_worker": path.parent.name} for path, w in seen.items() for e in w.events()]


# --- looking at the stack (blocking boto3: tests are the operator here) ---------------------
def submit(settings: Settings, folder: Path, email_to: str, job_id: str, name: str | None = None,
           credentials: dict[str, str] | None = None) -> None:
    """Upload like a client: photos, then manifest.json (the trigger); as ``credentials`` if given."""
    import concurrent.futures

    from processor.commands.submit import plan_upload, upload

    plan = plan_upload(folder, email_to, name, job_id)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    try:
        if credentials:
            os.environ.pop("AWS_SESSION_TOKEN", None)
            os.environ.update(credentials)
        # Callable from sync code and from inside a running event loop (async tests) alike.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, upload(plan, settings, show_progress=False)).result()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def job_status(stack: LocalStack, settings: Settings, job_id: str) -> dict[str, Any] | None:
    s3 = stack.client("s3", settings)
    try:
        body = s3.get_object(Bucket=settings.output_bucket, Key=f"jobs/{job_id}/status.json")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.25,
             what: str = "condition", on_timeout: Callable[[], str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    detail = on_timeout() if on_timeout else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{detail[-6000:]}")


def wait_for_state(stack: LocalStack, settings: Settings, job_id: str, states: Iterable[str],
                   timeout: float, fleet: Fleet | None = None) -> dict[str, Any]:
    wanted = set(states)

    def check() -> dict[str, Any] | None:
        status = job_status(stack, settings, job_id)
        return status if status and status["state"] in wanted else None
    return wait_for(check, timeout, what=f"job {job_id} in {sorted(wanted)}",
                    on_timeout=(lambda: _fleet_tail(fleet)) if fleet else None)


def _fleet_tail(fleet: Fleet) -> str:
    return "\n".join(f"--- {w.log_path}\n{w.logs()[-3000:]}" for w in fleet.workers)


def wait_for_stage(stack: LocalStack, settings: Settings, job_id: str, stage: str, timeout: float,
                   min_step: int = 0, fleet: Fleet | None = None) -> dict[str, Any]:
    """Until ``stage`` has started (and reported at least ``min_step`` progress) and not finished."""
    def check() -> dict[str, Any] | None:
        status = job_status(stack, settings, job_id)
        if not status:
            return None
        timing = status.get("stages", {}).get(stage)
        if not timing or timing.get("started_at") is None or timing.get("finished_at") is not None:
            return None
        progress = status.get("progress") or {}
        if min_step and not (progress.get("stage") == stage and progress.get("step", 0) >= min_step):
            return None
        return status
    return wait_for(check, timeout, interval=0.1, what=f"job {job_id} inside stage {stage}",
                    on_timeout=(lambda: _fleet_tail(fleet)) if fleet else None)


def emails_for(outbox: Path, job_id: str) -> list[email.message.EmailMessage]:
    """Messages in the SMTP sink's outbox about ``job_id`` (by the X-Headshots-Job header)."""
    found = []
    for path in sorted(outbox.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if msg.get("X-Headshots-Job") == job_id:
            found.append(msg)  # type: ignore[arg-type]
    return found


def email_paths_for(outbox: Path, job_id: str) -> list[Path]:
    return [p for p in sorted(outbox.glob("*.eml"))
            if email.message_from_bytes(p.read_bytes(), policy=email.policy.default).get("X-Headshots-Job") == job_id]


def text_body(msg: email.message.EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def queue_counts(stack: LocalStack, settings: Settings) -> tuple[int, int]:
    """(visible, in flight) on the job queue."""
    attrs = stack.client("sqs", settings).get_queue_attributes(
        QueueUrl=settings.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def dlq_count(stack: LocalStack, settings: Settings) -> int:
    attrs = stack.client("sqs", settings).get_queue_attributes(
        QueueUrl=settings.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def keys(stack: LocalStack, bucket: str, prefix: str, settings: Settings) -> list[str]:
    s3 = stack.client("s3", settings)
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(o["Key"] for o in page.get("Contents", []))
    return out


def s3_event_body(bucket: str, key: str) -> str:
    """An S3 ObjectCreated notification for ``key``, as S3 writes it to SQS (key URL-encoded)."""
    from urllib.parse import quote_plus

    return json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": 100}},
    }]})


def send_raw(stack: LocalStack, settings: Settings, body: str) -> str:
    return stack.client("sqs", settings).send_message(QueueUrl=settings.queue_url, MessageBody=body)["MessageId"]


def leftover_objects(stack: LocalStack, settings: Settings, job_id: str) -> list[str]:
    """What S3 still holds of an ended job's data: its uploads and its work folder."""
    return (keys(stack, settings.input_bucket, f"uploads/{job_id}/", settings)
            + keys(stack, settings.output_bucket, f"jobs/{job_id}/work/", settings))


def _wall(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() if ts else float("inf")


def owner_overlaps(events: list[dict[str, Any]], job_id: str,
                   pauses: dict[str, list[list[float]]] | None = None) -> int:
    """Times two workers were both *live* owners of ``job_id``: their attempts (from
    ``job_claimed`` to the event that ends the attempt, in each worker's own log) ran at the same
    time, not counting the time a worker was frozen by SIGSTOP (a frozen owner writes nothing;
    taking its job over is the point). Log timestamps are the host's real clock."""
    ends = {"job_ended", "job_lost_to_other_worker", "job_interrupted_requeued", "job_crashed",
            "ownership_lost", "worker_stopped", "job_fail_failed", "job_lost_while_claiming"}
    spans: list[tuple[str, float, float]] = []
    open_at: dict[str, float] = {}
    for e in events:
        who, name = str(e.get("_worker", "")), e.get("event")
        if name == "job_claimed" and e.get("job_id") == job_id:
            open_at[who] = _wall(str(e.get("timestamp", "")))
        elif name in ends and who in open_at and e.get("job_id") in (job_id, None):
            spans.append((who, open_at.pop(who), _wall(str(e.get("timestamp", "")))))
    spans += [(who, start, float("inf")) for who, start in open_at.items()]

    def live(who: str, lo: float, hi: float) -> float:
        """Seconds of [lo, hi) in which ``who`` was not frozen."""
        frozen = sum(max(0.0, min(hi, b) - max(lo, a)) for a, b in (pauses or {}).get(who, []))
        return (hi - lo) - frozen
    count = 0
    for i, (w1, s1, e1) in enumerate(spans):
        for w2, s2, e2 in spans[i + 1:]:
            lo, hi = max(s1, s2), min(e1, e2)
            if w1 != w2 and lo < hi and hi != float("inf") and min(live(w1, lo, hi), live(w2, lo, hi)) > 0.05:
                count += 1
            elif w1 != w2 and lo < hi and hi == float("inf"):
                count += 1  # two attempts still open at the end: both believe they own it
    return count


def stage_runs(status: dict[str, Any]) -> dict[str, int]:
    """How many times each stage was started, from status.json's timings."""
    return {name: int(t.get("runs", 0)) for name, t in status.get("stages", {}).items()}
