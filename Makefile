# snapvlm: the two commands of the README are `make demo` and `make test`.
# Both set up what they need (ONNX Runtime, reference tools) and are quick the
# second time.

GO      ?= go
BIN     := bin/snapvlm
GOFLAGS ?=

.PHONY: loadtest all sysdeps testdeps build lib arm64 test-arm64 setup deps test demo bench bench-report fuzz lint clean

all: build

# sysdeps: the C libraries linked with cgo (libjpeg, libwebp: Pillow's decoders).
sysdeps:
	scripts/sysdeps.sh

# build: the snapvlm binary, and the development tool that writes
# random-weight test models (make demo's offline fallback).
build: sysdeps
	$(GO) build $(GOFLAGS) -o $(BIN) ./cmd/snapvlm
	$(GO) build $(GOFLAGS) -o bin/snapvlm-testmodel ./cmd/snapvlm-testmodel

# lib: libsnapvlm, the C library (capi/snapvlm.h is its API), shared and
# static, with the header, in build/lib. cgo's generated header is removed:
# the hand-written snapvlm.h is the interface.
LIBDIR := build/lib
lib: sysdeps
	$(GO) build $(GOFLAGS) -buildmode=c-shared -o $(LIBDIR)/libsnapvlm.so ./capi
	$(GO) build $(GOFLAGS) -buildmode=c-archive -o $(LIBDIR)/libsnapvlm.a ./capi
	rm -f $(LIBDIR)/libsnapvlm.h
	cp capi/snapvlm.h $(LIBDIR)/snapvlm.h

# arm64: snapvlm and libsnapvlm.so for linux/arm64 in build/arm64, with
# Debian's aarch64 cross compiler and arm64 libraries (installed by
# scripts/sysdeps-arm64.sh when missing).
ARM64DIR := build/arm64
ARM64ENV := CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc PKG_CONFIG_PATH=/usr/lib/aarch64-linux-gnu/pkgconfig
arm64:
	scripts/sysdeps-arm64.sh
	$(ARM64ENV) $(GO) build $(GOFLAGS) -o $(ARM64DIR)/snapvlm ./cmd/snapvlm
	$(ARM64ENV) $(GO) build $(GOFLAGS) -buildmode=c-shared -o $(ARM64DIR)/libsnapvlm.so ./capi
	rm -f $(ARM64DIR)/libsnapvlm.h

# test-arm64: the arm64 builds under qemu-aarch64 give the x86-64 build's
# tokens (CLI and C API; scripts/test-arm64.sh).
test-arm64: build arm64
	scripts/test-arm64.sh

# setup: the ONNX Runtime library (npm tarball, pinned sha256) in the user cache.
setup: build
	$(BIN) setup --quiet

# deps: the reference tools the tests compare against (transformers.js).
deps:
	scripts/deps.sh

# testdeps: what the tests run besides Go (ffmpeg, chromium, JDK, kotlinc).
testdeps:
	scripts/sysdeps.sh test

test: setup deps testdeps
	SNAPVLM_REQUIRE_ORT=1 SNAPVLM_REQUIRE_JSREF=1 SNAPVLM_REQUIRE_FFMPEG=1 SNAPVLM_REQUIRE_CHROMIUM=1 $(GO) test $(GOFLAGS) -timeout 30m ./...

demo: setup
	scripts/demo.sh

# fuzz: every native Go fuzz target for FUZZTIME each (scripts/fuzz.sh finds
# them); a crasher lands in the package's testdata/fuzz/ as a regression case.
FUZZTIME ?= 60s
fuzz: sysdeps
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench: setup
	$(GO) test -run '^$$' -bench . -benchmem ./...

# bench-report: snapvlm vs transformers.js vs llama.cpp (llama-bench built
# from source) vs the memory bandwidth, one markdown table per model size
# (scripts/bench-report.sh; ~30 min the first time on 2 cores).
bench-report:
	scripts/bench-report.sh

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf bin build

# loadtest: 50 concurrent clients x 20 requests against an in-process server
# (loopback only, --parallel 2 --queue 8, tiny model): only 429s may fail, no
# goroutine leaks, flat RSS; prints p50/p99 latency and throughput.
loadtest: setup
	SNAPVLM_REQUIRE_ORT=1 $(GO) test $(GOFLAGS) -tags loadtest -run '^TestLoad$$' -count=1 -v -timeout 20m ./server
