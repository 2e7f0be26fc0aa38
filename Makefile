PYTHON ?= python3

.PHONY: install test test-data test-all bench lint demo

install:
	$(PYTHON) -m pip install -e ".[test,chgnet,torch]"

test: install test-data
	$(PYTHON) -m pytest -q

# test-only data (motep's sdist) into tests/.cache/, fetched once; the tests only read it
test-data:
	$(PYTHON) tests/fetch_test_data.py

test-all: install test-data
	$(PYTHON) -m pytest -q -m "slow or not slow"

bench: install
	@echo "benchmarks/*.py print side-by-side ratios; see benchmarks/RESULTS.md"; for f in benchmarks/bench_*.py; do echo "== $$f"; $(PYTHON) $$f || exit 1; done

lint:
	$(PYTHON) -m ruff check mtpkit tests benchmarks

demo: install
	mtpkit run examples/nyzc75.toml --scale tiny --output runs/nyzc75-tiny
