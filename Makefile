# stream-scorer: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/stream-scorer
DEMO_RATE ?= 20
PYTEST_ARGS ?=

.PHONY: help install run test lint typecheck unit stack-up stack-down stack-status train materialize worker api \
        produce bench clean

help:
	@echo "make run          the whole system, live (stack, models, features, worker, API, demo traffic)"
	@echo "make test         install, start the stack when needed, lint, run every test"
	@echo "make stack-up | stack-down | stack-status    local Kafka (KRaft) + Redis"
	@echo "make train | materialize | worker | api | produce | lint | bench"

$(VENV)/.installed: pyproject.toml setup.py constraints.txt stream_scorer/core/_window.c stream_scorer/core/_decide.c stream_scorer/core/_pyfloat.h
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,mlflow]"
	@touch $@

install: $(VENV)/.installed

stack-up:
	@$(PYTHON) stack/stack.py up

stack-down:
	@$(PYTHON) stack/stack.py down

stack-status:
	@$(PYTHON) stack/stack.py status

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: install stack-up lint
	$(PY) -m pytest $(PYTEST_ARGS)

unit: install
	$(PY) -m pytest tests -m "not integration and not e2e and not slow" $(PYTEST_ARGS)

train: install
	$(CLI) train fraud
	$(CLI) train personalization

materialize: install stack-up
	$(CLI) materialize --reset-if-changed

run: install stack-up
	@DEMO_RATE=$(DEMO_RATE) bash stack/run.sh

worker: install stack-up
	$(CLI) worker

api: install stack-up
	$(CLI) api

produce: install stack-up
	$(CLI) produce mixed --rate $(DEMO_RATE)

bench: install stack-up
	$(PY) bench/stream.py
	$(PY) bench/http.py

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache
