"""One set of versions for CI and the image (requirements/, written by scripts/lock.sh).

scripts/setup.sh (CI) and the Dockerfile install the same hashed runtime.lock with --no-deps and
the same torch release (requirements/torch.txt: a CPU build here, PyPI's CUDA build in the
image). The lock covers pyproject.toml, the image carries no dev kit, and pip, asked in
isolation what the image's install step would install, answers exactly the lock, a set in which
every requirement is met.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
REQ = REPO / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)


def pins(*names: str) -> dict[str, str]:
    """Normalized name -> version, over the given files of requirements/."""
    found: dict[str, str] = {}
    for name in names:
        for pkg, version in _PIN.findall((REQ / name).read_text()):
            assert canonicalize_name(pkg) not in found, f"{pkg} pinned twice"
            found[canonicalize_name(pkg)] = version
    return found


def torch_pin() -> str:
    (line,) = [ln for ln in (REQ / "torch.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    name, version = line.split("==")
    assert name == "torch"
    return version


def hashed_installs(script: str) -> list[set[str]]:
    """The `-r` files of each `pip install --require-hashes` command (continuation lines joined)."""
    text = script.replace("\\\n", " ")
    return [set(re.findall(r"-r\s+(\S+)", cmd)) for cmd in re.findall(r"pip install[^\n&|]*", text)
            if "--require-hashes" in cmd]


def plain_installs(script: str) -> list[str]:
    return re.findall(r"pip install[^\n&|]*", script.replace("\\\n", " "))


def test_setup_and_the_image_install_the_same_lock_and_the_same_torch() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text()
    dockerfile = (REPO / "Dockerfile").read_text()
    # the runtime lock, hash-checked and unresolved, in both
    assert any({"requirements/runtime.lock", "requirements/dev.lock"} <= files for files in hashed_installs(setup))
    assert any({"requirements/runtime.lock", "requirements/torch-cuda.lock"} <= files
               for files in hashed_installs(dockerfile))
    for script in (setup, dockerfile):
        assert all("--no-deps" in cmd for cmd in plain_installs(script) if "--require-hashes" in cmd)
        # torch from requirements/torch.txt and nowhere else; the project without resolving
        assert [c for c in plain_installs(script) if "requirements/torch.txt" in c], script[:80]
        assert "torch==" not in script and "TORCH_VERSION" not in script
        assert any("--no-deps" in c and re.search(r"(-e )?\.(\s|$)", c) for c in plain_installs(script))
    assert "COPY requirements ./requirements" in dockerfile
    assert "pinned by pyproject.toml" not in dockerfile
    # every lock was resolved at that torch, and it is the torch CI runs
    version = torch_pin()
    for lock in ("runtime.lock", "torch-cuda.lock", "dev.lock"):
        assert f"# Resolved with torch=={version} " in (REQ / lock).read_text()
    import torch

    assert Version(torch.__version__).public == version


def test_the_locks_cover_every_requirement_of_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = pins("runtime.lock") | {"torch": torch_pin()}
    everything = runtime | pins("dev.lock")
    groups = [(project["dependencies"] + project["optional-dependencies"]["gpu"], runtime)]
    groups += [(project["optional-dependencies"][extra], everything) for extra in ("dev", "devkit")]
    stale = []
    for requirements, locked in groups:
        for text in requirements:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            if name == project["name"]:
                continue
            if name not in locked or not req.specifier.contains(locked[name], prereleases=True):
                stale.append(f"{text} (locked: {locked.get(name)})")
    assert not stale, f"pyproject.toml asks for what the locks lack; run scripts/lock.sh: {stale}"


def test_the_image_carries_no_dev_kit() -> None:
    image = pins("runtime.lock", "torch-cuda.lock")
    dev = pins("dev.lock")
    assert not set(image) & set(dev)
    for name in ("moto", "aiosmtpd", "pytest", "import-linter"):
        assert name not in image and name in dev
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "dev.lock" not in dockerfile and ".[" not in dockerfile
    # CI's CPU torch needs none of the CUDA stack, and CI does not install it
    assert "torch-cuda.lock" not in (REPO / "scripts" / "setup.sh").read_text()
    assert {"triton", "nvidia-cudnn-cu13"} <= set(pins("torch-cuda.lock"))


def _needed(report: list[dict], extra_pins: dict[str, list[str]]) -> list[str]:
    """Requirements of the report's packages (with the extras somebody asks for) none of the set meets."""
    env = default_environment()
    metadata = {canonicalize_name(i["metadata"]["name"]): i["metadata"].get("requires_dist", []) for i in report}
    versions = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in report}
    for name, requires in extra_pins.items():
        metadata[name] = requires
    extras: dict[str, set[str]] = {name: set() for name in metadata}
    unmet: list[str] = []
    changed = True
    while changed:  # extras asked for bring requirements that may ask for more extras
        changed = False
        for name, requires in metadata.items():
            for text in requires:
                req = Requirement(text)
                if req.marker and not any(req.marker.evaluate({**env, "extra": e}) for e in extras[name] | {""}):
                    continue
                dep = canonicalize_name(req.name)
                if dep in extras and not req.extras <= extras[dep]:
                    extras[dep] |= req.extras
                    changed = True
    for name, requires in metadata.items():
        for text in requires:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({**env, "extra": e}) for e in extras[name] | {""}):
                continue
            dep = canonicalize_name(req.name)
            have = versions.get(dep) or (torch_pin() if dep == "torch" else None)
            if have is None or not req.specifier.contains(have, prereleases=True):
                unmet.append(f"{name} needs {text}, the set has {have}")
    return unmet


@pytest.mark.timeout(300)
def test_a_dry_run_of_the_image_install_step_gives_exactly_the_lock(tmp_path: Path) -> None:
    """pip, with no config of this machine (--isolated: PyPI, no local wheels), on the image's
    step: every pin exists on PyPI for CPython 3.11 on Linux with a matching hash, pip would
    install exactly those, and their metadata (plus CI's torch) leaves no requirement unmet.
    torch and its CUDA stack (GBs) are not fetched: torch's requirements are read from the
    torch installed here, the release both use."""
    if not (sys.platform == "linux" and sys.version_info[:2] == (3, 11)):
        pytest.skip("the lock is for CPython 3.11 on Linux")
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed", "--quiet",
           "--report", str(report), "--require-hashes", "--no-deps", "-r", str(REQ / "runtime.lock")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    installs = json.loads(report.read_text())["install"]
    would = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}
    assert would == pins("runtime.lock")
    assert all(i["download_info"]["url"].startswith("https://files.pythonhosted.org/") for i in installs)
    torch_requires = distribution("torch").requires or []
    assert not _needed(installs, {"torch": torch_requires})
