# Two commands on a fresh machine: `make demo` (set up and run the workflow on the bundled demo)
# and `make test` (set up and run the tests).
# The CPU build of torch is installed first so that pip never pulls a multi-GB CUDA build (PyPI's
# Linux wheel is one): TORCH_INDEX is PyTorch's CPU wheel index, looked up beside PyPI for torch alone
# (--no-deps: its dependencies come with the package, from PyPI; a local wheel mirror is used as well;
# `make demo TORCH_INDEX=` skips the index). The package itself only asks
# for torch>=2.2, so users with a GPU build keep theirs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test install benchmarks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml Makefile
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-deps --timeout 20 --retries 1 $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev,cluster]"  # cluster: the slurm profile dry-runs in the tests
	touch $@

install: $(VENV)/.installed

test: install
	$(BIN)/python -m pytest -q

# The whole workflow on data/demo (configs/config.yaml); a second run does nothing, and an
# interrupted one picks up where it stopped (a training job from its last checkpoint). Snakemake
# ends a run that made something by saying where the report is (the Snakefile's onsuccess).
demo: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores 8 --rerun-incomplete
	@echo "Snakemake's own report of the run: $(BIN)/snakemake --report results/demo/snakemake_report.html"

# The accuracy matrix (benchmarks/matrix.py): every row, all 5 folds, on the current code; hours on
# 2 cores. Raw results go to benchmarks/results/matrix/, the table into benchmarks/RESULTS.md.
benchmarks: install
	cd benchmarks && $(abspath $(BIN))/python matrix.py --threads $$(nproc)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
