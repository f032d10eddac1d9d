#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before `bench/gpu_session.sh`: stages what the GPU machine
# lacks and cannot download, as paths to pass in the device tool's `carry`:
#   .whl/              diffusers, deepface, dlib-bin and their small deps, as cp312 wheels
#   .cache/whl-train/  structlog
#   .gpu/deepface/.deepface/weights/   the dlib face weights (from face_recognition_models)
#   .cache/assets/     sample face photos (`headshots assets`)
# .whl/ and .gpu/ must be ignored by git (.git/info/exclude) so they travel only when carried.
set -euo pipefail
cd "$(dirname "$0")/.."
for p in /.whl/ /.gpu/; do grep -qxF "$p" .git/info/exclude 2>/dev/null || echo "$p" >> .git/info/exclude; done
dl() {  # dl DEST SPEC...: cp312 manylinux wheels, no dependencies
  local dest="$1"; shift
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$dest" "$@" 2>&1 | grep -v "is ignored" || true
}
dl .whl diffusers==0.42.1 deepface==0.0.103 dlib-bin==20.0.1.post1 retina-face==0.0.19 gdown \
  importlib_metadata==8.5.0 beautifulsoup4 soupsieve
dl .cache/whl-train structlog==26.1.0
# find_spec, not import: the package imports pkg_resources, which new setuptools dropped.
models="$(.venv/bin/python -c 'import importlib.util as u, os; print(os.path.dirname(u.find_spec("face_recognition_models").origin))')/models"
mkdir -p .gpu/deepface/.deepface/weights
cp "$models"/dlib_face_recognition_resnet_model_v1.dat "$models"/shape_predictor_5_face_landmarks.dat \
  .gpu/deepface/.deepface/weights/
.venv/bin/headshots assets >/dev/null
du -sh .whl .cache/whl-train .gpu .cache/assets
