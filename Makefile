# Jianglian: the two commands are `make serve` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
DATA_DIR ?= data
export JIANGLIAN_DATA_DIR ?= $(abspath $(DATA_DIR))
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: serve test lint typecheck pytest venv system-deps demo encoder ranker notebooks clean

include mk/neo4j.mk
include mk/web.mk
include mk/py312.mk

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Installing torch is the slow part; the stamp makes it happen once per venv.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --progress-bar off -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests need: Chromium for the browser tests, a CJK font for the notebooks.
system-deps:
	@if ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -qi 'noto.*cjk'; then \
		echo "installing chromium and fonts-noto-cjk (apt-get)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk; \
	fi

demo: $(STAMP)
	$(VENV)/bin/jianglian demo --if-empty

encoder: $(STAMP)
	$(VENV)/bin/jianglian build-encoder --if-missing

# the fusion the served ranking uses, chosen on the store's own history (docs/ranking.md)
ranker: $(STAMP) demo
	$(VENV)/bin/jianglian train-ranker --if-missing

serve: $(STAMP) web-assets demo encoder ranker
	$(VENV)/bin/jianglian serve --host 127.0.0.1 --port 5000 --workers 2

# ruff, and the import direction of docs/architecture.md (import-linter contracts in pyproject.toml)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP) system-deps neo4j-build web-assets
	$(PY) -m pytest -q

test: lint typecheck pytest pytest312

notebooks: $(STAMP)
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --no-browser notebooks

clean:
	rm -rf $(VENV) $(VENV312) test-output .pytest_cache .mypy_cache .ruff_cache
