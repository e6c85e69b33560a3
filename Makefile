# Everything runs from a project-local virtual environment (.venv), created on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= examples/gateway.toml
FUZZ_RUNS ?= 200000

.PHONY: install run test test-pg test-pg-gateway typecheck test-firmware-deep bench fuzz demo c-example console-screenshots clean-venv

## install: create .venv and install the project with its test tools
install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: start the gateway with the example config and the sample SIMs (Ctrl-C stops it)
run: $(STAMP)
	$(BIN)/nce-gateway sims import examples/sims.csv --config $(CONFIG)
	$(BIN)/nce-gateway serve --config $(CONFIG)

## test: the whole test suite (real sockets on loopback)
test: $(STAMP)
	$(BIN)/python -m pytest

## test-pg: only the PostgreSQL tests (store contract on PostgreSQL, gateway end to end); starts a
## server of its own from Debian's postgresql package, or uses $$NCE_TEST_PG_URL
test-pg: $(STAMP)
	$(BIN)/python -m pytest -m postgresql
	$(MAKE) test-pg-gateway

## test-pg-gateway: gateway-level API tests again with the store on PostgreSQL (NCE_TEST_STORE, tests/conftest.py
## make_config); tests that open the SQLite file themselves or run the CLI against it are left out ("not cli")
PG_GATEWAY_TESTS := tests/test_api_inspector.py tests/test_api_integrations.py tests/test_api_psk.py \
	tests/test_api_lwm2m_actions.py tests/test_retention.py tests/test_api_connectivity.py tests/test_replay.py \
	tests/test_followed_settings.py
test-pg-gateway: $(STAMP)
	NCE_TEST_STORE=postgresql $(BIN)/python -m pytest $(PG_GATEWAY_TESTS) -k "not cli"

## typecheck: mypy over the store package and the typed seams ([tool.mypy] in pyproject.toml)
typecheck: $(STAMP)
	$(BIN)/python -m mypy

## test-firmware-deep: generated C/Python encoders against the decoder on 500 Hypothesis templates each
test-firmware-deep: $(STAMP)
	BCL_FIRMWARE_EXAMPLES=500 $(BIN)/python -m pytest tests/test_bcl_firmware.py -q

## c-example: build the C firmware example (needs libcoap3-dev)
c-example:
	$(MAKE) -C firmware_examples/c

## fuzz: coverage-guided fuzzing of the BCL validator and decoders (atheris), FUZZ_RUNS inputs
fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[fuzz]'
	mkdir -p fuzz-corpus fuzz-artifacts
	PYTHONPATH=. $(BIN)/python -m fuzz.bcl_fuzz fuzz-corpus -runs=$(FUZZ_RUNS) -timeout=20 -artifact_prefix=fuzz-artifacts/

## bench: all benchmarks, each printing a table with its baseline
bench: $(STAMP)
	$(BIN)/python -m bench

## console-screenshots: PNGs of the console's main pages into docs/console (needs Debian's chromium)
console-screenshots: $(STAMP)
	$(BIN)/python -m gateway.console.screenshots --out docs/console

clean-venv:
	rm -rf $(VENV)
