# Two commands do all the set-up (README): `make demo` runs the workflow on the embedded
# default, `make test` runs the fast test suite. Both create .venv on first use. Neither installs
# system packages: `make test-slurm` (the real single-node SLURM run) needs Debian's slurm and munge
# packages installed first, as `.ci/run` does.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
# The CPU build of torch; on a GPU machine install your CUDA build into $(VENV) first.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test test-slurm figures report lint dryrun clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES)

figures: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) figures

report: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

# The fast suite: everything but the real SLURM cluster; -rs prints why each skipped test skipped.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -rs -m "not slurm" $(PYTEST_ARGS)

# The embedded default end to end through a real one-node SLURM cluster (tests/test_slurm.py): root,
# with slurmctld, slurmd, slurm-client and munge installed (.ci/run installs them); about 22 min on 2 cores.
test-slurm: $(BIN)/.installed
	$(BIN)/python -m pytest -q -rs -m slurm $(PYTEST_ARGS)

dryrun: $(BIN)/.installed
	$(BIN)/snakemake -n

# Python (ruff), the workflow's format (snakefmt) and Snakemake's own workflow lint; all must be clean.
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
