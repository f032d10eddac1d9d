"""``headshots serve``: the stack, the front door and a worker stay up and print the upload page's
URL; Ctrl-C ends them cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.fixtures.console import foreign_lines
from tests.frontdoor.client import call
from tests.integration.harness import REPO_ROOT


def test_serve_prints_a_working_upload_page_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSHOTS_")}
    proc = subprocess.Popen([sys.executable, "-m", "processor.cli", "serve", "--port", "0", "--num-images", "2",
                             "--cache", str(tmp_path / "serve")], cwd=REPO_ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errors: list[str] = []
    try:
        assert proc.stdout is not None and proc.stderr is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        reader.start()
        threading.Thread(target=lambda: errors.extend(iter(proc.stderr.readline, "")), daemon=True).start()
        deadline = time.monotonic() + 120
        while not any(line.startswith("metrics:") for line in lines) and time.monotonic() < deadline:
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.5)
        text = "".join(lines)
        url = re.search(r"^upload page: (http://127\.0\.0\.1:\d+)/$", text, re.M)
        assert url, text
        page = call(url.group(1) + "/")
        assert page.status == 200 and 'id="upload"' in page.text
        assert re.search(r"^outbox:\s+\S+outbox$", text, re.M)
        assert "HEADSHOTS_AWS_ENDPOINT_URL=http://127.0.0.1:" in text and "headshots metrics" in text
        time.sleep(2)  # the worker is polling the queue
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0
    time.sleep(0.2)  # the reader thread takes the last lines
    # a quiet console: the service's own lines only (the stack's start builds the tiny model and
    # imports diffusers, where bitsandbytes and transformers used to talk)
    assert foreign_lines("".join(errors), ("Ctrl-C stops",)) == [], "".join(errors)
