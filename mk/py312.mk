# The fast part of the suite on Python 3.12 (the default Python of current Ubuntu LTS; pyproject.toml allows
# 3.11 to 3.13). A second venv, .venv312, installed once (its stamp, like the main venv's); the tests are the
# library packages' doctests and the unit tests that need no server, no browser and no long run, bounded by
# PY312_TIMEOUT seconds. Without a Python 3.12 on the machine the target says so and passes.

PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $(shell command -v python3.12.real 2>/dev/null))
VENV312 := .venv312
STAMP312 := $(VENV312)/.installed-dev
PY312_TIMEOUT ?= 900
PY312_TESTS := graph embeddings recommender workflow tests/test_dataset.py tests/test_selection.py \
	tests/test_engine.py tests/test_text_model.py tests/test_signals.py tests/test_api.py tests/test_assign.py

.PHONY: pytest312

$(STAMP312): pyproject.toml
	$(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install -q --upgrade pip
	$(VENV312)/bin/python -m pip install --progress-bar off -e '.[dev]'
	touch $(STAMP312)

ifeq ($(PYTHON312),)
pytest312:
	@echo "pytest312: skipped, no Python 3.12 found (set PYTHON312=/path/to/python3.12)"
else
pytest312: $(STAMP312)
	timeout $(PY312_TIMEOUT) $(VENV312)/bin/python -m pytest -q -p no:cacheprovider \
		-m "not neo4j and not browser and not slow" $(PY312_TESTS)
endif
