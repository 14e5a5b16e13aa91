# Two commands do all the set-up (README): `make demo` runs the workflow on the embedded
# default, `make test` runs the test suite. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
# The CPU build of torch; on a GPU machine install your CUDA build into $(VENV) first.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test figures report lint dryrun clean

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

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

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
