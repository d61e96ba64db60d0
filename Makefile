# vwfcgi: nginx -> FastCGI -> vwfcgi (Swift) -> pool of real vw processes.
#
#   make run    install what is missing, build, serve MODEL_DIR on http://127.0.0.1:PORT
#   make test   install what is missing, unit tests, end-to-end tests through real nginx + vw

MODEL_DIR  ?= $(CURDIR)/models
PORT       ?= 8080
SHARDS     ?= 1
VWFCGI_BIN ?= $(CURDIR)/.build/release/vwfcgi
PYTHON     := $(CURDIR)/.venv/bin/python
SWIFT      ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)

export MODEL_DIR PORT SHARDS VWFCGI_BIN

.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
.PHONY: all deps build run unit e2e test clean

include mk/deploy.mk
include mk/bench.mk
include mk/fuzz.mk

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@test -x "$(SWIFT)" || { echo "make: ERROR: no Swift toolchain (swift is not on PATH nor at /opt/swift/usr/bin)" >&2; exit 1; }
	# The Swift runtime linked in, as in the image (docker/Dockerfile): 3.4 MiB less resident
	# memory than the shared libraries, and direct calls to swift_retain/release.
	$(SWIFT) build -c release --product vwfcgi --static-swift-stdlib
	@test -x $(VWFCGI_BIN) || { echo "make: ERROR: the build did not produce $(VWFCGI_BIN)" >&2; exit 1; }

run: deps build
	scripts/run.sh

unit: deps
	$(SWIFT) test
	VWFCGI_MEMORY_TESTS=1 $(SWIFT) test --skip-build --filter JoinMemoryTests

e2e: deps build
	$(PYTHON) -m pytest -q Tests/e2e

test: deps unit e2e deploy-check fuzz-smoke

clean:
	rm -rf .build run .pytest_cache Tests/e2e/__pycache__ Tests/deploy/__pycache__ bench/out
