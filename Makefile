# nsr-search: the two commands a new user needs are `make quickstart` and `make test`.
# The Python versions nsr-search supports (pyproject.toml's requires-python), newest first.
SUPPORTED := 3.13 3.12 3.11
# The interpreter the venv is built with: PYTHON= where given, else the newest supported one on
# PATH that runs (a pyenv shim of a version pyenv has not selected exists but fails).
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(foreach v,$(SUPPORTED),$(shell python$(v) -c '' >/dev/null 2>&1 && echo python$(v))) python3)
endif
VENV   ?= .venv
BIN    := $(VENV)/bin
# Trials launched by NNI run `python -m trials.*`: the venv must come first on their PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup quickstart test lint bench stop clean check-python

# Refuses an interpreter that does not run or is outside the supported range, naming the range;
# says which one the venv is built with, or which one an existing venv already has.
define check_python
	@$(PYTHON) -c '' 2>/dev/null || { echo "nsr-search: PYTHON=$(PYTHON) does not run. It needs Python 3.11, 3.12 or 3.13: put python3.13, python3.12 or python3.11 on PATH, or set PYTHON=/path/to/python3.x" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v < (3, 14) else f"nsr-search needs Python 3.11, 3.12 or 3.13 (requires-python >=3.11,<3.14); PYTHON=$(PYTHON) is Python {sys.version.split()[0]}: set PYTHON=python3.13, python3.12 or python3.11")'
	@want=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	have=$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
	if [ -z "$$have" ]; then echo "nsr-search: building $(VENV) with $(PYTHON) (Python $$want); where torch is not on local disk pip downloads ~3.3 GB (README: Python versions)"; \
	elif [ "$$have" = "$$want" ]; then echo "nsr-search: $(VENV) has Python $$have ($(PYTHON))"; \
	elif [ "$(origin PYTHON)" = file ]; then echo "nsr-search: keeping $(VENV) (Python $$have); the newest found is $(PYTHON) (Python $$want): make clean to rebuild on it"; \
	else echo "nsr-search: $(VENV) has Python $$have, PYTHON=$(PYTHON) is Python $$want: make clean first, or give another VENV=" >&2; exit 1; fi
endef


# Create the virtual environment from nothing and install the project with its test tools.
# torch 2.14.1 / torchvision 0.29.1 come from the local wheel cache where there is one (3.11 here);
# elsewhere pip downloads them, the CUDA build (README: Python versions).
$(BIN)/.installed: pyproject.toml
	$(check_python)
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

# A venv on PY (default: the PYTHON picked above) under .check-python/, built as `make setup`
# builds one, then the smoke subset on it (.ci/check-python): e.g. make check-python PY=python3.13
PY ?= $(PYTHON)
check-python:
	.ci/check-python $(PY)

clean: stop
	rm -rf $(VENV) *.egg-info
