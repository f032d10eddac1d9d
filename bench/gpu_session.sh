#!/usr/bin/env bash
# One command for a GPU lease: installs the carried wheels, then runs, each writing ONE JSON
# line to $OUT/ (stderr beside it as *.err):
#   gpu_job_baseline.json   bench/gpu_job.py --sdxl-shaped --profile baseline  (the "before")
#   gpu_job_optimized.json  bench/gpu_job.py --sdxl-shaped --profile optimized (the "after")
#   train_lora.json         bench/train.py --sdxl-shaped --method lora (optimized vs naive)
#   generate.json           bench/generate.py --sdxl-shaped (batched vs one at a time)
#   compile_unet.json       only when time is left: torch.compile of the UNet, cold and for
#                           the next job in the same worker process, and its payback in jobs
# Sized for ~6-7 minutes on one H100 (caps measure a sample; the JSON projects the full job).
#
# Device tool call (from the repo root; ~53 MiB travels):
#   command:  bash bench/gpu_session.sh
#   carry:    [".whl", ".cache/whl-train", ".gpu", ".cache/assets"]
#   timeout_s: 540
# .whl: diffusers, deepface, dlib-bin (cp312) and their small deps; .cache/whl-train: structlog;
# .gpu/deepface/.deepface/weights: the dlib .dat files; .cache/assets/images: sample face photos.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/gpu-session}"
mkdir -p "$OUT"
BUDGET_S="${GPU_SESSION_BUDGET_S:-500}"   # skip the optional run when less than its need is left
PY="${PYTHON:-python3}"

# Wheels: one file per distribution (two versions of one stop pip), .whl first.
wheels=()
declare -A seen=()
for w in .whl/*.whl .cache/whl-train/*.whl; do
  [ -f "$w" ] || continue
  name="$(basename "$w" | cut -d- -f1 | tr 'A-Z-' 'a-z_')"
  [ -n "${seen[$name]:-}" ] && continue
  seen[$name]=1
  wheels+=("$w")
done
if [ "${#wheels[@]}" -gt 0 ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "${wheels[@]}" >"$OUT/pip.err" 2>&1 || echo "pip install failed (see pip.err)"
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export DEEPFACE_HOME="${DEEPFACE_HOME:-$PWD/.gpu/deepface}"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total --format=csv; "$PY" -c \
  "import torch, diffusers, transformers; print(torch.__version__, diffusers.__version__, transformers.__version__)"; } \
  >"$OUT/versions.txt" 2>&1

run() {  # run NAME SECONDS ARGS...: one bench, its JSON line to $OUT/NAME.json
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS
  timeout "$limit" "$PY" "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"
  echo "$name: exit $? in $((SECONDS - t0)) s"
  tail -c 600 "$OUT/$name.json"; echo
}

run gpu_job_baseline 150 bench/gpu_job.py --sdxl-shaped --profile baseline \
    --train-steps 5 --images 2 --class-images 1
run gpu_job_optimized 150 bench/gpu_job.py --sdxl-shaped --profile optimized \
    --train-steps 8 --images 16 --class-images 4
run train_lora 120 bench/train.py --sdxl-shaped --method lora --steps 6 --warmup 2 \
    --class-images 8 --copies 1 --timeout 50
run generate 90 bench/generate.py --sdxl-shaped --images 8 --baseline-images 2 --batch-size 8
if [ $((BUDGET_S - SECONDS)) -gt 150 ]; then
  run compile_unet 150 bench/compile_unet.py --sdxl-shaped --batches 1 --steps 10 --job-steps 25 \
      --no-restart
else
  echo "compile_unet: skipped, $((BUDGET_S - SECONDS)) s left of ${BUDGET_S}"
fi
echo "total ${SECONDS} s"
