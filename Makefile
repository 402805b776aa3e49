# robustreid: two commands that work on a fresh machine.
#   make demo   set up .venv and run the main job on the built-in synthetic dataset
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= runs/demo

.PHONY: setup demo test clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first, pinned, so that pip takes the local CPU wheel instead of a CUDA build
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/robustreid demo --out $(DEMO_DIR)

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
