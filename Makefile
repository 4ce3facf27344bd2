# DataPilot: one entry point for set-up, code generation, running and testing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROTOS := $(shell find protos -name '*.proto')
STAMP := $(VENV)/.installed
GEN_STAMP := gen/.generated
# checkov, for tests/deploy, in a venv of its own: installed here, not inside a test's timeout.
TOOLS_STAMP := .venv-tools/.checkov-installed

.PHONY: help venv proto schema run test lint fmt bench chaos chaos-short deploy-check image \
	container-up container-down container-test clean

help:
	@echo "make run    - start the whole system on its embedded defaults (gateway on 127.0.0.1:8080)"
	@echo "make test   - set everything up and run the test suite"
	@echo "make lint   - ruff and mypy (strict)"
	@echo "make proto  - generate the gRPC code into gen/"
	@echo "make schema - regenerate docs/result.schema.json from the typed report model"
	@echo "make bench  - run the benchmarks (figures + ratios, written to bench-results/)"
	@echo "make chaos-short - the chaos suite at a short scale (20 jobs, 12 s S3 outage; CI runs it)"
	@echo "make chaos  - the chaos suite at full scale (100 jobs, 60 s S3 outage, 200 uploads from 50 clients)"
	@echo "make image          - build datapilot:dev (podman, or docker where a daemon runs)"
	@echo "make container-up   - the whole system in containers, gateway on 127.0.0.1:\$${GATEWAY_PORT:-8080}"
	@echo "make container-down - stop and remove those containers, their network and volumes"
	@echo "make container-test - up, real uploads and a worker SIGTERM, the pod specs, down"
	@echo "make clean  - remove the virtual environment, generated code and run data"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	echo "$(CURDIR)/gen" > $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/datapilot_gen.pth
	touch $@

venv: $(STAMP)

$(GEN_STAMP): $(STAMP) $(PROTOS)
	rm -rf gen && mkdir -p gen
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=gen --pyi_out=gen --grpc_python_out=gen $(PROTOS)
	find gen -type d -exec touch {}/__init__.py \;
	rm -f gen/__init__.py
	touch $@

proto: $(GEN_STAMP)

$(TOOLS_STAMP): deploy/tools/checkov-requirements.txt
	bash deploy/tools/install-checkov.sh .venv-tools

schema: $(STAMP)
	$(BIN)/python -m datapilot_runtime.report.schema docs/result.schema.json

run: $(GEN_STAMP)
	$(BIN)/python -m devstack

# Not part of `make test`, each behind its own target (and run by .ci/run): tests/chaos (whole
# stacks broken on purpose, about 5 minutes at the short scale) and tests/containers (images).
test: $(GEN_STAMP) $(TOOLS_STAMP)
	$(BIN)/python -m pytest --ignore=tests/containers --ignore=tests/chaos $(PYTEST_ARGS)

lint: $(GEN_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy datapilot_runtime datapilot_cli gateway ingest_svc analysis_svc llm_svc devstack tests bench

chaos-short: $(GEN_STAMP)
	CHAOS_SCALE=short $(BIN)/python -m pytest tests/chaos $(PYTEST_ARGS)

chaos: $(GEN_STAMP)
	CHAOS_SCALE=full $(BIN)/python -m pytest tests/chaos $(PYTEST_ARGS)

deploy-check: $(GEN_STAMP) $(TOOLS_STAMP)
	$(BIN)/python -m pytest tests/deploy

bench: $(GEN_STAMP)
	@command -v wrk >/dev/null 2>&1 || apt-get install -y -qq wrk >/dev/null 2>&1 \
		|| echo "wrk is not installed: B1 falls back to a Python load generator"
	$(BIN)/python -m bench $(BENCH)

# Containers (deploy/containers.sh): podman here, with deploy/local/containers.conf.
image:
	deploy/containers.sh image

container-up:
	deploy/containers.sh up

container-down:
	deploy/containers.sh down

# Not part of `make test` (tests/containers is opt-in: CONTAINER_TESTS=1). The image is rebuilt
# first (cached layers when the code has not changed) so that the code under test is this one.
container-test: $(GEN_STAMP) image
	CONTAINER_TESTS=1 $(BIN)/python -m pytest -p no:cacheprovider tests/containers $(PYTEST_ARGS)

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .venv-tools gen .run .mypy_cache .ruff_cache .pytest_cache
