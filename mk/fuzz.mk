# libFuzzer targets of every parser (issue 8) and of the join/restore path (issue 18), included by the Makefile:
#
#   make fuzz         build Fuzz/ with -sanitize=fuzzer,address, run each target for FUZZ_SECONDS
#                     (default 600) on a corpus kept in Fuzz/.build/corpus (seeded from Fuzz/Corpus)
#   make fuzz-smoke   each target for FUZZ_SMOKE_SECONDS (default 20) over a throw-away copy of
#                     the committed seed corpus; part of `make test`
#
# Both fail on any crash, sanitizer report, broken invariant or per-input timeout (the input is
# saved under Fuzz/.build/crashes/<target>/). FUZZ_TARGETS selects targets, FUZZ_ARGS adds libFuzzer
# flags (e.g. FUZZ_ARGS=-jobs=2). The fuzz package symlinks the main package's sources (Fuzz/Package.swift).

FUZZ_SECONDS       ?= 600
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_TARGETS       ?= FuzzBatch FuzzGrammar FuzzJSON FuzzPredictionParser FuzzFastCGIParams FuzzFramer FuzzV2 FuzzJoin FuzzNative
FUZZ_SWIFT_FLAGS   := -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library

.PHONY: fuzz fuzz-smoke fuzz-build

fuzz-build:
	@test -x "$(SWIFT)" || { echo "make: ERROR: no Swift toolchain (swift is not on PATH nor at /opt/swift/usr/bin)" >&2; exit 1; }
	@mkdir -p Fuzz/.build
	@echo "$(SWIFT) build -c debug --package-path Fuzz $(FUZZ_SWIFT_FLAGS)"
	@# gold warns once per ASan helper symbol; keep the rest of the output.
	@$(SWIFT) build -c debug --package-path Fuzz $(FUZZ_SWIFT_FLAGS) >Fuzz/.build/build.log 2>&1; status=$$?; \
	    grep -v "Cannot export local symbol '__asan" Fuzz/.build/build.log; \
	    [ $$status -eq 0 ] || { echo "make: ERROR: building the fuzz targets failed (log: Fuzz/.build/build.log)" >&2; exit 1; }

fuzz: fuzz-build
	Fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	Fuzz/run.sh $(FUZZ_SMOKE_SECONDS) --smoke $(FUZZ_TARGETS)
