# Benchmark suite (issue 6), included by the Makefile:
#
#   make bench     install what is missing (apt via scripts/install-deps.sh, bench/requirements.txt
#                  into .venv), build, then run bench/run.py (about 3-4 minutes on 2 cores)
#
# BENCH_ARGS  extra arguments for bench/run.py, e.g. "--duration 8 --warmup 2" or "--shards 2"
# BENCH_BUILD the target that builds vwfcgi first (default: build); empty to use the binary as is

BENCH_PYTHON ?= $(CURDIR)/.venv/bin/python
BENCH_BUILD  ?= build
BENCH_ARGS   ?=

.PHONY: bench bench-deps

bench-deps: deps
	@$(BENCH_PYTHON) bench/check_requirements.py bench/requirements.txt \
	    || $(BENCH_PYTHON) -m pip install -q --disable-pip-version-check -r bench/requirements.txt \
	    || { echo "make: ERROR: pip install -r bench/requirements.txt failed (no network to PyPI?)" >&2; exit 1; }

bench: deps bench-deps $(BENCH_BUILD)
	$(BENCH_PYTHON) bench/run.py $(BENCH_ARGS)
