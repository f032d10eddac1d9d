"""The wheel (what the Dockerfile installs with ``pip install .``) carries templates and prompts.

DESIGN.md: templates/ and prompts/ must be found from an installed wheel, not only from a
checkout. Built and installed here into a private folder, then imported from there alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import sys
import handlers, processor, prompts, templates
site = sys.argv[1]
for module in (handlers, processor, prompts, templates):
    assert module.__file__.startswith(site), module.__file__
from handlers.generate.prompts import load_prompt_set
from processor.email import _ENV, KINDS
print(len(load_prompt_set().prompts))
for kind in KINDS:
    for ext in ("txt", "html"):
        assert _ENV.get_template(f"{kind}.{ext}") is not None
import frontdoor.pages
assert frontdoor.pages.__file__.startswith(site)
assert "upload" in frontdoor.pages.render("upload.html", base="", min_photos=10, max_photos=20, max_mb=25, accept="",
                                          types="{}", code_minutes=30)
print("templates ok")
"""


def test_the_wheel_carries_templates_and_prompts_and_they_load_from_an_installed_copy(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    from processor.email import KINDS

    for kind in KINDS:  # every email a person can get, failure kinds included
        assert {f"templates/{kind}.txt", f"templates/{kind}.html"} <= names
    assert {"templates/_base.html", "prompts/headshots.toml"} <= names
    assert {"frontdoor/lambda_handler.py", "frontdoor/templates/upload.html", "frontdoor/static/upload.js"} <= names
    assert not any(n.startswith(("tests/", "bench/", "terraform/")) for n in names)

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", _PROBE, str(site)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    from handlers.generate.prompts import load_prompt_set

    assert int(lines[0]) == len(load_prompt_set().prompts) >= 60 and lines[-1] == "templates ok"
