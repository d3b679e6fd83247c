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
# offline here; pinned so pip never pulls a multi-GB CUDA build).
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP) $(RUN_STAMP)

install: $(DEV_STAMP)

quickstart: $(RUN_STAMP)
	$(BIN)/modelport quickstart

test: $(DEV_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/check

clean:
	rm -rf $(VENV) .modelport .pytest_cache .mypy_cache .ruff_cache .coverage
