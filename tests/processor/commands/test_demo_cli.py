"""``headshots demo``: one process, the embedded stack, a delivered job and its email."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from processor.cli import main
from processor.commands.demo import demo_settings
from processor.devkit.tiny_sdxl import tiny_model_dir
from tests.fixtures.console import foreign_lines
from tests.integration.harness import REPO_ROOT

#: The demo's own lines besides its structlog lines: its prints and the upload progress bar.
DEMO_LINES = ("submitted job ", "browse: ", "upload job-")


def test_demo_settings_use_the_tiny_model_in_report_mode_unless_a_model_is_named(tmp_path: Path) -> None:
    tiny = demo_settings(tmp_path / "demo", None, num_images=50)
    assert tiny["selection_mode"] == "report" and tiny["resolution"] == 128 and tiny["num_images"] == 50
    assert (tiny_model_dir(tmp_path) / "model_index.json").exists()
    assert tiny["base_model"] == str(tiny_model_dir(tmp_path))
    real = demo_settings(tmp_path / "demo", "stabilityai/stable-diffusion-xl-base-1.0")
    assert real["base_model"] == "stabilityai/stable-diffusion-xl-base-1.0" and "selection_mode" not in real


def test_demo_delivers_a_job_and_prints_state_results_and_the_email_path(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """The demo's job with portraits: both crops of each image, every JPEG marked as AI-made,
    and a console with the service's lines only (a fresh cache: the tiny model is built too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSHOTS_")}
    out = subprocess.run([sys.executable, "-m", "processor.cli", "demo", "--num-images", "3", "--portraits",
                          "--cache", str(tmp_path / "demo")],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr[-4000:]
    assert re.search(r"^state:\s+delivered$", out.stdout, re.M), out.stdout
    assert re.search(r"^results: s3://headshots-output/results/[\w.-]+/$", out.stdout, re.M)
    path = Path(re.search(r"^email:\s+(\S+)$", out.stdout, re.M).group(1))
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert "headshots are ready" in str(msg["Subject"])
    assert "report mode" in msg.get_body(preferencelist=("plain",)).get_content()
    # the delivered files stay on disk after the embedded stack is gone
    folder = Path(re.search(r"^folder:\s+(\S+)$", out.stdout, re.M).group(1))
    assert {p.name for p in folder.iterdir()} == {"headshot-001.jpg", "headshot-002.jpg", "headshot-003.jpg",
                                                  "headshot-001-portrait.jpg", "headshot-002-portrait.jpg",
                                                  "headshot-003-portrait.jpg",
                                                  "contact-sheet.jpg", "headshots.zip", "results.json"}
    for n in (1, 2, 3):  # the square at the tiny model's resolution, the 4:5 crop of the same image
        with Image.open(folder / f"headshot-00{n}.jpg") as square, \
                Image.open(folder / f"headshot-00{n}-portrait.jpg") as portrait:
            assert square.size == (128, 128) and portrait.size == (112, 140)
    # every delivered JPEG carries both marks; `headshots eval` reads the watermark back after q75 too
    assert main(["eval", str(folder), "--json"]) == 0
    marks = json.loads(capsys.readouterr().out)["marks"]
    assert marks["summary"] == {"files": 7, "xmp": 7, "watermark": 7, "watermark_after_q75": 7, "complete": 7}
    # a quiet console: the service's own lines, no library's (warnings, progress bars, tracebacks)
    assert foreign_lines(out.stderr, DEMO_LINES) == []
    assert "truncated" not in out.stderr and "<|endoftext|>" not in out.stderr
