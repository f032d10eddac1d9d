#!/usr/bin/env bash
# Build the front door's Lambda package: frontdoor/ (code, templates, static files), exactly the
# processor modules it imports (found from the import graph, never the worker), and its
# dependencies as wheels for the Lambda runtime. No archive provider exists offline, so
# Terraform takes this zip as a file (terraform/modules/frontdoor, variable package_path).
#
#   scripts/build-frontdoor-zip.sh [OUT.zip]       default: build/frontdoor.zip
#   LAMBDA_PYTHON=3.12 LAMBDA_PLATFORM=manylinux2014_x86_64   (the function's runtime and architecture)
#
# The zip is byte-for-byte reproducible for the same inputs (sorted entries, fixed timestamps).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-build/frontdoor.zip}"
py_version="${LAMBDA_PYTHON:-3.12}"
platform="${LAMBDA_PLATFORM:-manylinux2014_x86_64}"
PY="${PYTHON:-.venv/bin/python}"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

# boto3 is bundled (not the runtime's): the code is tested against the version it ships with.
"$PY" -m pip install --quiet --disable-pip-version-check --no-compile --target "$stage" \
  --no-warn-conflicts --platform "$platform" --implementation cp --python-version "$py_version" --only-binary=:all: \
  "boto3>=1.35.6" "pydantic>=2.7" "pydantic-settings>=2.4" "email-validator>=2.1" "jinja2>=3.1" "structlog>=24.1" "tenacity>=8.2" \
  2>&1 | { grep -v "is ignored" || true; }

"$PY" - "$stage" "$out" <<'PY'
import os, shutil, sys, zipfile
from pathlib import Path

import grimp

stage, out = Path(sys.argv[1]), Path(sys.argv[2])
graph = grimp.build_graph("frontdoor", "processor")
needed = {m for m in graph.find_upstream_modules("frontdoor", as_package=True) if m.startswith("processor")}
needed |= {m.rsplit(".", i)[0] for m in needed for i in range(1, m.count(".") + 1)}  # parent packages
for banned in ("processor.aws", "processor.stages", "processor.worker", "processor.pipeline", "processor.devkit"):
    assert not any(m == banned or m.startswith(banned + ".") for m in needed), f"front door imports {banned}"
for module in sorted(needed):
    src = Path(*module.split("."))
    src = src / "__init__.py" if src.is_dir() else src.with_suffix(".py")
    (stage / src).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, stage / src)
for path in sorted(Path("frontdoor").rglob("*")):
    if path.is_file() and "__pycache__" not in path.parts:
        (stage / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, stage / path)
out.parent.mkdir(parents=True, exist_ok=True)
tmp = out.with_suffix(".tmp")
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
    for path in sorted(p for p in stage.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        info = zipfile.ZipInfo(str(path.relative_to(stage)), date_time=(2024, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, path.read_bytes())
os.replace(tmp, out)
print(f"{out}: {out.stat().st_size / 2**20:.1f} MiB; runtime modules: {', '.join(sorted(needed))}")
PY
