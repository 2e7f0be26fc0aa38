PYTHON ?= python3

.PHONY: install gpaw test test-data test-all bench lint demo

install:
	$(PYTHON) -m pip install -e ".[test,chgnet,torch]"

# GPAW, the DFT labeller of the main job: Debian's libxc/OpenBLAS/FFTW (apt-get, when this is a Debian
# machine and we may), then the pinned wheel, which builds with g++
gpaw:
	@$(PYTHON) -c "import gpaw" 2>/dev/null || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libxc-dev libopenblas-dev libfftw3-dev; \
	  fi; \
	  CC=g++ $(PYTHON) -m pip install "gpaw==26.7.0" "gpaw-data==1.2.1"; }

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

# the main job: the shipped PBE potential, GPAW for anything new (examples/nyzc75.toml);
# the fast option without DFT: mtpkit run examples/nyzc75-chgnet.toml --scale tiny
demo: install gpaw
	mtpkit run examples/nyzc75.toml --scale tiny --output runs/nyzc75-tiny
