PYTHON ?= python3

.PHONY: install test test-all bench lint demo

install:
	$(PYTHON) -m pip install -e ".[test]"

test: install
	$(PYTHON) -m pytest -q

test-all: install
	$(PYTHON) -m pytest -q -m "slow or not slow"

bench: install
	$(PYTHON) benchmarks/run_all.py

lint:
	$(PYTHON) -m ruff check mtpkit tests benchmarks

demo: install
	mtpkit run examples/nyzc75.toml --scale tiny
