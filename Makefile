# The commands you need; CI runs `make test`. Every target creates .venv/ when it is missing.
# ARGS=... passes flags to a benchmark's script: make bench-serving ARGS=--quick
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS_BIN := .venv-tools/bin
BUNDLE := build/bundle
ARCH ?= arm64
EPOCHS ?= 40# make train and make demo; tests/readme runs them with fewer
# The function's and layer's Makefiles find a python3.13 for their bytecode themselves; PYC_PYTHON=... picks one.
PYC_PYTHON ?=

.PHONY: install tools demo train promote invoke serve test check lint format typecheck pytest \
	train-smoke validate build bench bench-serving rehearse

install: $(STAMP)

$(STAMP): pyproject.toml tests/kserve-requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[training,serve,dev]' -r tests/kserve-requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps kserve==0.21.0
	touch $(STAMP)

# SAM CLI, cfn-lint and checkov pin their own boto3: each lives in a venv of its own.
tools:
	PYTHON=$(PYTHON) scripts/template_tools.sh

demo: train promote
	$(BIN)/python scripts/demo_predict.py events/predict.json

train: $(STAMP)
	$(BIN)/python -m training --data examples/data/digits.csv --target label --out $(BUNDLE) --epochs $(EPOCHS)

promote: $(STAMP)
	$(BIN)/sml promote $(BUNDLE)

invoke: $(STAMP)
	$(BIN)/sml invoke PredictFunction -e events/predict.json

serve: $(STAMP)
	$(BIN)/sml serve --port 3000

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

pytest: $(STAMP) tools
	$(BIN)/pytest -n 2 -q

train-smoke: $(STAMP)
	$(BIN)/python -m training --dry-run --out build/smoke

validate: tools
	$(TOOLS_BIN)/sam validate --lint

build: tools
	ARCH=$(ARCH) $(if $(PYC_PYTHON),PYC_PYTHON=$(PYC_PYTHON)) $(TOOLS_BIN)/sam build --parameter-overrides Architecture=$(ARCH)

# sam build for x86_64 and arm64, each built handler run on the runtime's Python in a cached Debian root
# (needs root, debootstrap, qemu-user-static); then the tests that break a build on purpose.
rehearse: $(STAMP) tools
	$(BIN)/python -m scripts.rehearse
	$(BIN)/pytest -q -m rehearsal tests/build/test_rehearsal.py

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py $(ARGS)

bench-serving: $(STAMP)
	$(BIN)/python benchmarks/serving.py $(ARGS)
