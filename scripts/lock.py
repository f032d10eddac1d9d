"""Writes requirements/*.lock from pyproject.toml with ``uv pip compile --generate-hashes``.

Run through scripts/lock.sh (it brings uv). One resolution for CPython 3.11 on x86_64 Linux,
the platform of CI and of the image, with torch held at requirements/torch.txt. It is split
into three hashed files, each installed with ``--require-hashes --no-deps``:

- runtime.lock: [project.dependencies] + the gpu extra, without torch (CI installs a local CPU
  build of torch, the image PyPI's CUDA build: same version, different files and hashes) and
  without torch's CUDA stack. Installed by scripts/setup.sh and by the Dockerfile.
- torch-cuda.lock: the packages PyPI's Linux torch needs for CUDA (cuda-toolkit, nvidia-*,
  triton, ...): the image only. Found as what torch pulls in on Linux and not on Windows, where
  PyPI's torch is a CPU build, less anything another runtime package also needs.
- dev.lock: the dev and devkit extras, resolved with the runtime set as constraints (so they
  never move a runtime version), listing only what runtime.lock does not. CI only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQ = ROOT / "requirements"
PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
CPU_TORCH_PLATFORM = "x86_64-pc-windows-msvc"
INDEX = "https://pypi.org/simple"

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(text: str) -> dict[str, list[str]]:
    """Blocks of a compiled requirements file by normalized name: the pin line, its hashes, its `via`."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _NAME.match(line)
        if match:
            current = blocks.setdefault(normalize(match.group(1)), [])
        elif not line.startswith((" ", "\t")):
            current = None
        if current is not None:
            current.append(line)
    return blocks


def parents(block: list[str]) -> set[str]:
    """The names after `# via` in a block (a requirement file or pyproject counts as a root)."""
    found: set[str] = set()
    via = False
    for line in block[1:]:
        text = line.strip()
        if text.startswith("# via"):
            via = True
            text = text[len("# via"):].strip()
        elif via and text.startswith("#"):
            text = text.lstrip("#").strip()
        else:
            continue
        if text:
            found.add("<root>" if " " in text or text.startswith("-") else normalize(text))
    return found


def compile_(uv: str, inputs: list[str], out: Path, *extra: str) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    cmd = [uv, "pip", "compile", "--no-config", "--no-header", "--quiet", "--index-url", INDEX,
           "--python-version", PYTHON_VERSION, *extra, *inputs, "-o", str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    return parse(out.read_text())


def cuda_stack(full: dict[str, list[str]], linux: set[str], cpu: set[str]) -> set[str]:
    """What only torch's Linux (CUDA) requirements bring in, closed over the `via` graph."""
    stack = (linux - cpu) & set(full)
    changed = True
    while changed:
        changed = False
        for name in sorted(stack):
            if not parents(full[name]) <= stack | {"torch"}:
                stack.discard(name)
                changed = True
    return stack


def header(title: str, torch_pin: str, uv_version: str) -> str:
    return (f"# {title}\n"
            f"# CPython {PYTHON_VERSION} on {PLATFORM}, from pyproject.toml by scripts/lock.sh\n"
            f"# ({uv_version} pip compile --generate-hashes). Do not edit by hand: rerun scripts/lock.sh.\n"
            f"# Resolved with {torch_pin} (requirements/torch.txt), installed separately: not listed here.\n"
            f"# Install with: pip install --require-hashes --no-deps -r <this file>\n")


def write(path: Path, head: str, blocks: dict[str, list[str]]) -> None:
    body = "\n".join(line for name in sorted(blocks) for line in blocks[name])
    path.write_text(head + body + "\n")
    print(f"{path.relative_to(ROOT)}: {len(blocks)} packages")


def main(uv: str) -> int:
    pins = [line.split("#")[0].strip() for line in (REQ / "torch.txt").read_text().splitlines()]
    torch_pin = " ".join(p for p in pins if p)
    assert torch_pin.startswith("torch=="), f"requirements/torch.txt must pin torch, got {torch_pin!r}"
    uv_version = " ".join(subprocess.run([uv, "--version"], check=True, capture_output=True,
                                         text=True).stdout.split()[:2])
    torch_txt = str(REQ / "torch.txt")
    linux = ["--python-platform", PLATFORM, "--generate-hashes"]
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        full = compile_(uv, ["pyproject.toml", "--extra", "gpu"], t / "runtime.txt", *linux, "-c", torch_txt)
        torch_linux = compile_(uv, [torch_txt], t / "torch-linux.txt", "--python-platform", PLATFORM)
        torch_cpu = compile_(uv, [torch_txt], t / "torch-cpu.txt", "--python-platform", CPU_TORCH_PLATFORM)
        cuda = cuda_stack(full, set(torch_linux), set(torch_cpu))
        dev_full = compile_(uv, ["pyproject.toml", "--extra", "dev", "--extra", "devkit"], t / "dev.txt",
                            *linux, "-c", str(t / "runtime.txt"))
    for name, block in dev_full.items():
        if name in full and block[0] != full[name][0]:
            raise SystemExit(f"dev resolution moved {name}: {block[0]} vs {full[name][0]}")
    runtime = {n: b for n, b in full.items() if n != "torch" and n not in cuda}
    REQ.mkdir(exist_ok=True)
    write(REQ / "runtime.lock", header("The worker's runtime: [project.dependencies] + the gpu extra.",
                                       torch_pin, uv_version), runtime)
    write(REQ / "torch-cuda.lock", header("PyPI torch's CUDA stack on Linux: the image only (CI's torch is a CPU build).",
                                          torch_pin, uv_version), {n: full[n] for n in cuda})
    write(REQ / "dev.lock", header("The dev and devkit extras, beside runtime.lock (never in the image).",
                                   torch_pin, uv_version), {n: b for n, b in dev_full.items() if n not in full})
    return 0


def check_installed(extras: list[str]) -> int:
    """In a set-up venv: every requirement of pyproject.toml (and of `extras`) is installed.

    A requirement the locks lack is not installed by scripts/setup.sh (it never resolves), so
    this is how a dependency added without rerunning scripts/lock.sh shows up.
    """
    import tomllib
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    missing = []
    for text in wanted:
        req = Requirement(text)
        if normalize(req.name) == normalize(project["name"]) or (req.marker and not req.marker.evaluate()):
            continue
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            installed = None
        if installed is None or not req.specifier.contains(installed, prereleases=True):
            missing.append(f"{text} (installed: {installed})")
    for line in missing:
        print(f"pyproject.toml asks for {line}: requirements/*.lock is stale, run scripts/lock.sh", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check-installed"]:
        sys.exit(check_installed(sys.argv[2:]))
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "uv"))
