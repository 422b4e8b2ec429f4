# The commands you need; CI runs `make test`. Every target creates .venv/ when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUNDLE := build/bundle

.PHONY: install demo test check lint format typecheck pytest train-smoke bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[training,serve,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m training --data examples/data/digits.csv --target label --out $(BUNDLE) --epochs 40

test: check

check: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -n 2 -q

train-smoke: $(STAMP)
	$(BIN)/python -m training --dry-run --out build/smoke

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
