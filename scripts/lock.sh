#!/usr/bin/env bash
# Regenerates requirements/*.lock from pyproject.toml and requirements/torch.txt (hashed; see
# scripts/lock.py for what goes in which file). Run it after any change to the dependencies in
# pyproject.toml, commit the result, and rerun ./scripts/setup.sh. Needs PyPI, nothing else.
# uv (pinned) lives in the tools venv beside checkov and hadolint.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${TOOLS_VENV:-.venv-tools}"
PY="${PYTHON:-python3}"
UV_VERSION="${UV_VERSION:-0.13.9}"

if [ ! -x "$TOOLS/bin/uv" ] || [ "$("$TOOLS/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  [ -x "$TOOLS/bin/python" ] || "$PY" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q "uv==${UV_VERSION}" 2>&1 | grep -v "is ignored" || true
fi
"$TOOLS/bin/python" scripts/lock.py "$TOOLS/bin/uv"
