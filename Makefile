# Two commands on a fresh machine: `make repro` (the whole pipeline) and `make test`.
VENV ?= .venv
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup repro changes test lint bench

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed  # the venv only (then `dvc pull` from a team's remote)

repro: $(VENV)/.installed
	dvc repro
	python -m debiaslab.summary
# '-': what changed against git is extra information, so an error there (no git, no DVC) prints
# its one line and make's '(ignored)', and the repro still succeeds
	-python -m debiaslab.changes

changes: $(VENV)/.installed  # the metrics that changed against HEAD (or HEAD~1) -> reports/changes.md
	python -m debiaslab.changes

test: $(VENV)/.installed
	pytest

lint: $(VENV)/.installed
	ruff check .

bench: $(VENV)/.installed
	python benchmarks/train_throughput.py
