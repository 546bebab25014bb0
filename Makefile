# Two commands on a fresh machine: `make repro` (the whole pipeline) and `make test`.
VENV ?= .venv
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup repro test lint bench

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed  # the venv only (then `dvc pull` from a team's remote)

repro: $(VENV)/.installed
	dvc repro
	python -m debiaslab.summary

test: $(VENV)/.installed
	pytest

lint: $(VENV)/.installed
	ruff check .

bench: $(VENV)/.installed
	python benchmarks/train_throughput.py
