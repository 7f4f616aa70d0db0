# gate: see README.md.
SHELL    := /bin/bash
GO       ?= go
GOFLAGS  ?=
TESTFLAGS ?=
export GOFLAGS

.PHONY: all build image test unit integration e2e bench deps fuzz clean vet golden pi-update

all: build

build:
	$(GO) build ./...

## image: the arm64 SD image of the embedded example site at build/gate.img
image:
	@# bootstrapd serves Debian's unmodified iPXE binaries: fetch them if missing (as root).
	@test -e /usr/lib/ipxe/undionly.kpxe || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ipxe >/dev/null; }; } || \
		echo "make image: iPXE binaries missing; run as root or: sudo apt-get install ipxe"
	$(GO) run ./gate image --arch arm64 -o build/gate.img

## test: go vet, unit tests, integration tests (root + network namespaces)
test: vet unit integration

vet:
	$(GO) vet ./...

unit:
	$(GO) test $(TESTFLAGS) -short ./...

integration:
	$(GO) test $(TESTFLAGS) -count=1 -timeout 40m -p 1 -run 'Integration' ./...

## e2e: the whole journey on the real images in QEMU: the arm64 Pi image (raspi3b; static, then dhcp + dual stack), the amd64 twin for re-imaging
## (the whole log, the gate's console and the peers' included, is kept in build/e2e.log; on a
## failure its last 400 lines, dummy-ups' polling left out, are printed too)
e2e:
	@mkdir -p build
	$(GO) test $(TESTFLAGS) -count=1 -timeout 45m -v -run 'TestJourney$$' ./integration/site/ 2>&1 | tee build/e2e.log | grep -E '^(JOURNEY|---|FAIL|ok|PASS)|journey'; \
	rc=$${PIPESTATUS[0]}; if [ $$rc != 0 ]; then echo "== make e2e failed; the end of build/e2e.log:"; grep -v 'upsdrv_updateinfo' build/e2e.log | tail -n 400; fi; exit $$rc

## pi-update: gate update from one build to the next on the arm64 image under raspi3b (slow: 15 to 45 min)
pi-update:
	GATE_PI_UPDATE=1 $(GO) test $(TESTFLAGS) -count=1 -timeout 60m -v -run 'TestPiUpdate$$' ./integration/site/

## bench: Go benchmarks and side-by-side runs against the real peers
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	GATE_BENCH=1 $(GO) test -count=1 -timeout 60m -p 1 -v -run 'SideBySide' ./... | grep -E '^(BENCH|---|FAIL|ok)'

## golden: the Debian 12 golden test image for re-imaging (build/golden/, cached; root)
golden:
	bash scripts/golden.sh

## deps: every Debian package the tests use (root, idempotent)
deps:
	bash scripts/deps.sh

## fuzz: a short run of every fuzz target
fuzz:
	bash scripts/fuzz.sh

clean:
	rm -rf build
