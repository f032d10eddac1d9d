"""``headshots submit``: photos first, manifest last, one S3 event; bad input refused up front."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from processor.commands.submit import photo_files, plan_upload
from processor.devkit.local_stack import LocalStack
from processor.manifest import InvalidJobId, ManifestError
from processor.settings import Settings
from tests.integration.harness import REPO_ROOT, keys, queue_counts


def test_plan_lists_only_photos_sorted_and_writes_a_valid_manifest(tmp_path: Path) -> None:
    for name in ("b.jpg", "a.PNG", "notes.txt", "c.webp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    plan = plan_upload(tmp_path, "ada@example.com", name="Ada", job_id="ada-1")
    assert [p.name for p in plan.photos] == ["a.PNG", "b.jpg", "c.webp"]
    assert json.loads(plan.manifest) == {"version": 1, "email": "ada@example.com", "name": "Ada",
                                         "photos": ["a.PNG", "b.jpg", "c.webp"]}
    assert plan.job_id == "ada-1"


def test_plan_generates_an_unguessable_job_id_without_the_persons_name(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    # The name and address use letters outside hex, so a random id can never contain them by chance.
    ids = {plan_upload(tmp_path, "grace@example.com", name="Grace Hopper").job_id for _ in range(50)}
    assert len(ids) == 50
    for job_id in ids:
        assert re.fullmatch(r"job-[0-9a-f]{32}", job_id)  # 128 random bits
        assert "grace" not in job_id.lower() and "hopper" not in job_id.lower()  # ids are logged; names are not


@pytest.mark.parametrize("email,job_id,error", [
    ("not-an-email", None, ManifestError),
    ("ada@example.com", "../escape", InvalidJobId),
    ("ada@example.com", "a/b", InvalidJobId),
])
def test_plan_refuses_bad_input_before_uploading_anything(tmp_path: Path, email: str, job_id: str | None,
                                                          error: type[Exception]) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(error):
        plan_upload(tmp_path, email, job_id=job_id)


def test_plan_refuses_a_folder_without_photos(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    assert photo_files(tmp_path) == []
    with pytest.raises(ValueError):
        plan_upload(tmp_path, "ada@example.com")


def test_submit_uploads_photos_then_the_manifest_and_triggers_exactly_one_message(
        aws_settings: Settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:
    env = {**os.environ, **local_stack.settings_env(aws_settings)}
    out = subprocess.run([sys.executable, "-m", "processor.cli", "submit", str(job_photos),
                          "--email", "ada@example.com", "--job-id", job_id, "--quiet"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == job_id
    s3 = local_stack.client("s3", aws_settings)
    listed = s3.list_objects_v2(Bucket=aws_settings.input_bucket, Prefix=f"uploads/{job_id}/")["Contents"]
    names = {o["Key"].rsplit("/", 1)[-1]: o["LastModified"] for o in listed}
    assert set(names) == {p.name for p in job_photos.glob("*.jpg")} | {"manifest.json"}
    assert all(names["manifest.json"] >= t for t in names.values())  # the trigger came last
    assert queue_counts(local_stack, aws_settings) == (1, 0)
    assert len(keys(local_stack, aws_settings.input_bucket, f"uploads/{job_id}/", aws_settings)) == 13


def test_submit_exits_2_with_a_reason_for_a_bad_email(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    out = subprocess.run([sys.executable, "-m", "processor.cli", "submit", str(tmp_path), "--email", "nope"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if not k.startswith("HEADSHOTS_")})
    assert out.returncode == 2 and "email" in out.stderr
