# agentkernel's build. `make test` sets up a fresh Debian host and runs every
# test; `make run` sets up and runs a first sandbox.
GO        ?= go
BIN       := $(CURDIR)/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/agentkernel/agentkernel/internal/version.Version=$(VERSION)

.PHONY: all build setup run test test-unit test-k8s k8s-binaries soak fault crossbuild bench fuzz vet clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/agentkernel ./cmd/agentkernel
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/agentkernel-agent ./cmd/agentkernel-agent

setup:
	./scripts/setup.sh

# The first thing a new user runs: a command in an ephemeral sandbox on the
# default (host) image.
run: setup build
	$(BIN)/agentkernel run -- sh -c 'echo "hello from $$(hostname), uid $$(id -u) in a sandbox"; uname -a'

vet:
	$(GO) vet ./...

# The decoders of hostile input that issue 16 names (HTTP request bodies and
# paths, agent protocol frames, tar streams and image layers, image manifests
# and configs, the gateway's DNS and sniffers, QMP, agentkernel.toml): each
# has had a 10-minute campaign whose corpus is in its testdata/fuzz, and each
# gets 60 s in every CI run.
FUZZ_HOSTILE = (config FuzzParse|Fuzz(ImageMetadata|ClientExec|DecodeRequest|ReadFrame|QMPMessages|DecodeExecRequest|FilePath|RequestPath|RouteBodies|ImportTar|Layer|Handle|ClientHelloSNI|HTTPHost|Extract|ExtractEntries))$$

# Every test, as CI runs them. Integration tests build the real binaries and
# drive them against real runc, runsc and QEMU; then the hostile-input
# decoders are fuzzed for 60 s each and every other fuzz target for 5 s
# (make fuzz runs them all for a minute).
test: build vet
	./scripts/setup.sh --with-gvisor
	$(GO) test -count=1 -timeout 40m ./...
	FUZZTIME=5s LONG='$(FUZZ_HOSTILE)' LONGTIME=60s ./scripts/fuzz.sh

# The load suite at full size (100 sandboxes x 1000 operations; see
# docs/RELIABILITY.md). `make test` runs its short variant (5 x 50).
# SOAK_REPORT names a file for the report; AGENTKERNEL_SOAK_SANDBOXES,
# _EXECS and _CONCURRENCY change the size.
SOAK_REPORT ?=
soak: setup build
	AGENTKERNEL_SOAK=1 AGENTKERNEL_SOAK_REPORT=$(SOAK_REPORT) $(GO) test -count=1 -v -timeout 90m -run TestSoak ./test/soak/

# The fault suite at full size: every fault (kill -9 of the daemon, a
# supervisor, the runtime; daemon restarts; a full disk; a locked or
# corrupt store) on every backend the host has, AGENTKERNEL_FAULT_REPEAT
# times (default 3); see docs/RELIABILITY.md. `make test` runs its short
# variant (the container backend once, one microVM case). FAULT_REPORT
# names a file for the table of results.
FAULT_REPORT ?=
fault: setup build
	AGENTKERNEL_FAULT=1 AGENTKERNEL_FAULT_REPORT=$(FAULT_REPORT) $(GO) test -count=1 -v -timeout 90m ./test/fault/

# The CLI for macOS (amd64, arm64) and the whole binary for Linux arm64;
# make test builds only the macOS ones.
crossbuild:
	AGENTKERNEL_CROSSBUILD=all $(GO) test -count=1 -v -timeout 30m -run TestCrossBuild ./cmd/agentkernel/

# The kubernetes backend against a real single-node cluster brought up on
# this host and torn down after (scripts/k8s). It needs the cluster's
# binaries cached under /var/cache/agentkernel/k8s: `make k8s-binaries`
# builds them once from the Go module proxy (about 10 minutes on 2 cores);
# without them test-k8s says so and skips.
test-k8s: build
	./scripts/k8s/test.sh

k8s-binaries:
	nice ./scripts/k8s/build.sh

test-unit:
	$(GO) test -short -count=1 ./...

bench: setup build
	./scripts/bench.sh

# Every fuzz target for FUZZTIME each (default 60s); see scripts/fuzz.sh.
fuzz:
	./scripts/fuzz.sh

clean:
	rm -rf $(BIN)
