# Everything runs in a virtual environment in .venv, installed from constraints.txt.
#   make run    set up, then run every notebook in quick mode and print the summary
#   make test   set up, then ruff + unit tests + every notebook under nbval in quick mode
#   make full   set up, then run every notebook in full mode (a GPU is advised)
#   make lab    set up with JupyterLab and open it (extra arguments: LAB_ARGS=--allow-root)
#   make bench  set up, then time the from-scratch kernels against the libraries
#   make student  write the student versions (solutions removed) into students/
#   make site   build the HTML site from the last full run (runs/full) into site/
#   make sweep  full mode over seeds 0 1 2 into runs/sweep, write results/full.json and
#               README.md's results table (extra arguments: SWEEP_ARGS="-p DEVICE cuda")
#   make results  rewrite README.md's results table from results/full.json

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LAB_ARGS ?=
SWEEP_ARGS ?=
INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: setup run test full lab bench lint sync clean student site sweep results

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(INSTALL) --editable ".[test]"
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/python -m labutils run --quick --out runs/quick

full: setup
	$(BIN)/python -m labutils run --full --out runs/full

sweep: setup
	$(BIN)/python -m labutils run --full --seeds 0 1 2 --out runs/sweep \
		--results results/full.json $(SWEEP_ARGS); \
		status=$$?; $(BIN)/python -m labutils results && exit $$status

results: setup
	$(BIN)/python -m labutils results --results results/full.json --readme README.md

lint: setup
	$(BIN)/ruff check labutils tests notebooks benchmarks conftest.py
	$(BIN)/python -m labutils sync --check

test: lint
	LABUTILS_QUICK=1 $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env

bench: setup
	$(BIN)/python benchmarks/run.py

lab: setup
	$(INSTALL) --editable ".[test,lab]"
	$(BIN)/jupyter lab notebooks $(LAB_ARGS)

student: setup
	$(BIN)/python -m labutils student --out students

site: setup
	$(BIN)/python -m labutils site --run runs/full --out site

sync: setup
	$(BIN)/python -m labutils sync --strip

clean:
	rm -rf $(VENV) runs students site .pytest_cache .ruff_cache .hypothesis
