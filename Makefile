# nsr-search: the two commands a new user needs are `make quickstart` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Trials launched by NNI run `python -m trials.*`: the venv must come first on their PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup quickstart test lint bench stop clean

# Create the virtual environment from nothing and install the project with its test tools.
# torch 2.14.1 / torchvision 0.29.1 come from the local wheel cache where there is one.
$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "nsr-search needs Python 3.11 (NNI 3.0 and the torch pins); set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "setuptools<81" wheel
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@# NSR's C++ CPU kernel, built once here so the first trial does not wait ~30 s for it.
	$(BIN)/python -c 'from trials.nsr_kernel import cpu_kernel; cpu_kernel()'
	touch $@

setup: $(BIN)/.installed

# The main job: an NNI search on the embedded default (MLP-4 on digits), results in the service.
quickstart: setup
	$(BIN)/python -m service.quickstart

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/trial_time.py

# Stop every NNI experiment and the background service that `make quickstart` started.
stop:
	-$(BIN)/nnictl stop --all
	-pid=$$(cat "$${XDG_DATA_HOME:-$$HOME/.local/share}/nsr-search/service.pid" 2>/dev/null) && kill $$pid

clean: stop
	rm -rf $(VENV) *.egg-info
