# The two commands a newcomer needs:
#   make demo   set up, then run the main job on the bundled sample data
#   make test   set up, then lint, type-check and run the tests
# and one for speed and memory:
#   make bench  10,000 responses through the pipeline, against the naive baseline (a few minutes)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup model default-model demo test lint bench clean

setup: $(VENV)/.installed

# torch is installed first and pinned to the CPU release; transformers would otherwise
# let pip choose a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# builds the embedded encoder and its int8 copy once (cached outside the repository); the default
# heads are committed in models/default_model
model: setup
	$(BIN)/voc train --default

# retrains the committed default heads after a change to data/labelled, the taxonomy or training
default-model: setup
	$(BIN)/voc train --default --retrain

demo: model
	$(BIN)/voc run data/sample/nps_responses.csv

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: model
	$(BIN)/python -m bench.run

clean:
	rm -rf output .pytest_cache .mypy_cache .ruff_cache
