# The two commands a newcomer needs: `make quickstart` and `make test`.
# Both create .venv when it is missing and install modelport into it.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.modelport-run
DEV_STAMP := $(VENV)/.modelport-dev

.PHONY: quickstart test check install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# What the quickstart needs: modelport with the ONNX extra (fast path, edge export).
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[onnx]'
	touch $(RUN_STAMP)

# What the tests need: every extra, the dev tools, and torch 2.13.0 (the CPU build available
# offline here; pinned so pip never pulls a multi-GB CUDA build). Then the KServe SDK's REST client
# for tests/server/test_kserve_client.py, in its own step: kserve pins pandas<3 (for its model
# server, which we do not use), so it goes in with --no-deps, after the modules its import loads
# (requirements/kserve-client.txt says why each; installing kserve last keeps pip's resolver quiet).
$(DEV_STAMP): pyproject.toml requirements/kserve-client.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -r requirements/kserve-client.txt
	$(BIN)/python -m pip install --quiet --no-deps "kserve==0.21.0"
	touch $(DEV_STAMP) $(RUN_STAMP)

install: $(DEV_STAMP)

quickstart: $(RUN_STAMP)
	$(BIN)/modelport quickstart

test: $(DEV_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/check

clean:
	rm -rf $(VENV) .modelport .pytest_cache .mypy_cache .ruff_cache .coverage
