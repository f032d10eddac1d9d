"""``headshots metrics``: the ratings, the clicks per delivered job and the breakdown by settings,
read from the output bucket as the front door and the worker leave it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from processor.devkit.local_stack import LocalStack
from processor.job.feedback import Click, Rating, RunSettings, click_key, rating_key
from processor.job.state import JobState, JobStatus
from processor.settings import Settings
from tests.frontdoor.client import deliver
from tests.integration.harness import REPO_ROOT

FULL = {"model": "sdxl", "train_method": "full", "train_steps": 400, "steps": 25, "acceptance_rate": 0.5}


def _metrics(stack: LocalStack, settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSHOTS_")}
    env.update(stack.settings_env(settings))
    return subprocess.run([sys.executable, "-m", "processor.cli", "metrics", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_metrics_counts_ratings_clicks_and_groups_by_settings(local_stack: LocalStack, aws_settings: Settings) -> None:
    s3 = local_stack.client("s3", aws_settings)
    bucket = aws_settings.output_bucket
    for job in ("j-a", "j-b"):
        deliver(local_stack, aws_settings, job)  # tiny / lora / 8 steps
    deliver(local_stack, aws_settings, "j-c", run=FULL)
    now = 1.0
    rejected = JobStatus.new("j-r", now).transition(JobState.VALIDATING, now).end(JobState.REJECTED, now)
    s3.put_object(Bucket=bucket, Key="jobs/j-r/status.json", Body=rejected.to_json())  # not delivered: not counted
    for job, stars, favourites in (("j-a", 5, ["headshot-001.jpg"]), ("j-c", 2, [])):
        rating = Rating(job_id=job, stars=stars, favourites=favourites, rated_at=now, run=RunSettings())
        s3.put_object(Bucket=bucket, Key=rating_key(job), Body=rating.model_dump_json())
    for i, job in enumerate(("j-a", "j-a", "j-c")):
        s3.put_object(Bucket=bucket, Key=click_key(job, "headshots.zip", now + 3600 * i),
                      Body=Click(job_id=job, file="headshots.zip", at=now + 3600 * i).model_dump_json())
    s3.put_object(Bucket=bucket, Key="feedback/j-a/clicks/0000000001000-0000abcd.json",  # the old layout counts
                  Body=Click(job_id="j-a", file="headshots.zip", at=now).model_dump_json())
    s3.put_object(Bucket=bucket, Key="feedback/j-a/unrelated.txt", Body=b"ignored")

    out = _metrics(local_stack, aws_settings, "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads(out.stdout)
    assert m["delivered_jobs"] == 3 and m["ratings"] == 2 and m["mean_stars"] == 3.5
    assert m["distribution"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1} and m["favourites"] == 1
    assert m["clicks"] == 4 and m["clicks_per_job"] == round(4 / 3, 3) and m["jobs_with_a_click"] == 2
    groups = {(g["model"], g["method"]): g for g in m["groups"]}
    assert groups[("tiny", "lora")]["jobs"] == 2 and groups[("tiny", "lora")]["mean_stars"] == 5.0
    assert groups[("tiny", "lora")]["clicks_per_job"] == 1.5 and groups[("sdxl", "full")]["mean_acceptance"] == 0.5

    text = _metrics(local_stack, aws_settings)
    assert text.returncode == 0 and "mean 3.50 stars" in text.stdout and "1.33 per delivered job" in text.stdout
    assert "tiny" in text.stdout and "full" in text.stdout
