# tapwatch build. Every target works on ./..., but test-arm: it runs under qemu the
# packages whose code depends on the architecture (byte order, word size, alignment,
# atomics, syscalls), listed there; the rest are plain Go and tested natively.

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.7.0
MSGP        := github.com/tinylib/msgp@v1.6.5
GOBIN       ?= $(shell $(GO) env GOPATH)/bin
FUZZTIME    ?= 10s
BENCH_PACKETS ?= 1000000
BENCH_ROUNDS  ?= 5
# PGO: the builds optimize with cmd/tapwatch/pgo.txt, a profile of call
# edges in text form (see make pgo-profile), converted to the pprof file
# go build reads.
PGO_TEXT    := cmd/tapwatch/pgo.txt
PGO         := bin/pgo.pprof
PGO_RUNS    ?= 60

.PHONY: all build demo test check gen-check cross deb test-arm hil fuzz bench bench-live pgo-profile clean

all: build

build: $(PGO)
	CGO_ENABLED=0 $(GO) build -trimpath -pgo=$(PGO) -ldflags '$(LDFLAGS)' -o bin/tapwatch ./cmd/tapwatch

# tapbench runs here, on the build machine: the target's GOOS, GOARCH and
# their variants are not its own.
HOSTENV     := env -u GOOS -u GOARCH -u GOARM -u GOARM64 -u GOAMD64 -u GO386
$(PGO): $(PGO_TEXT) internal/pgotext/pgotext.go internal/benchtool/cli.go
	@mkdir -p bin
	$(HOSTENV) $(GO) run ./cmd/tapbench pgo -o $@ $(PGO_TEXT)

## pgo-profile: remakes cmd/tapwatch/pgo.txt, the profile the builds optimize
## with: CPU profiles of PGO_RUNS runs of tapwatch replay (built without a
## profile, and with the cpuprofile tag for its --cpu-profile), with a
## 500-rule policy, on a 1M-packet site plant capture of another seed than
## make bench's, merged, and kept as their call edges in text form.
## Run it after large changes to the hot path, and commit the result.
pgo-profile:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  CGO_ENABLED=0 $(GO) build -trimpath -pgo=off -tags cpuprofile -o $$tmp/tapwatch ./cmd/tapwatch && \
	  $(GO) build -o $$tmp/tapbench ./cmd/tapbench && \
	  $$tmp/tapbench gen -n 1000000 -seed 2 -o $$tmp/site.pcap && \
	  $$tmp/tapbench policy -n 500 -o $$tmp/site.yaml && \
	  for i in $$(seq $(PGO_RUNS)); do \
	    $$tmp/tapwatch replay --cpu-profile $$tmp/run$$i.pprof --policy $$tmp/site.yaml $$tmp/site.pcap >/dev/null 2>$$tmp/err || { cat $$tmp/err >&2; exit 1; }; \
	  done && \
	  $(GO) tool pprof -proto $$tmp/run*.pprof > $$tmp/merged.pprof && \
	  $(GO) tool preprofile -i $$tmp/merged.pprof -o $$tmp/pgo.txt && \
	  mv $$tmp/pgo.txt $(PGO_TEXT) && \
	  echo "$(PGO_TEXT): $$(( ($$(wc -l < $(PGO_TEXT)) - 1) / 3 )) call edges from $(PGO_RUNS) runs"

## demo: tapwatch demo, in under a minute, without a broker, a Pi or root:
## a generated plant, learning, attacks, the LED panel, the security
## center's tail and a summary; the files stay in tapwatch-demo/.
demo: build
	bin/tapwatch demo

## test: every test that needs only Go; tests that need a tool or root skip
## with the remedy, unless TAPWATCH_REQUIRE_ALL=1 (CI) makes a skip a failure.
test:
	$(GO) test -count=1 ./...

## check: formatting, vet, staticcheck (pinned) and the race detector.
check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(MAKE) --no-print-directory gen-check
	@test -x $(GOBIN)/staticcheck && $(GOBIN)/staticcheck -version | grep -q 'v0.7.0' || GOFLAGS= $(GO) install $(STATICCHECK)
	$(GOBIN)/staticcheck ./...
	$(GO) test -count=1 -race ./...

## gen-check: the committed msgp code is what go generate makes of event/event.go.
gen-check:
	@tmp=$$(mktemp -d) && cd event && \
	  $(GO) run $(MSGP) -file event.go -o $$tmp/event_gen.go -io=false -tests=false >/dev/null && \
	  if cmp -s $$tmp/event_gen.go event_gen.go; then rm -rf $$tmp; echo "event/event_gen.go is up to date"; \
	  else diff -u event_gen.go $$tmp/event_gen.go | head -40; rm -rf $$tmp; \
	    echo "event/event_gen.go is stale: run 'go generate ./event' and commit it"; exit 1; fi

## cross: static binaries for the boards tapwatch runs on.
cross: $(PGO)
	@mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=arm   GOARM=6 $(GO) build -trimpath -pgo=$(PGO) -ldflags '$(LDFLAGS)' -o dist/tapwatch-linux-armv6 ./cmd/tapwatch
	CGO_ENABLED=0 GOOS=linux GOARCH=arm   GOARM=7 $(GO) build -trimpath -pgo=$(PGO) -ldflags '$(LDFLAGS)' -o dist/tapwatch-linux-armv7 ./cmd/tapwatch
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64         $(GO) build -trimpath -pgo=$(PGO) -ldflags '$(LDFLAGS)' -o dist/tapwatch-linux-arm64 ./cmd/tapwatch
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64         $(GO) build -trimpath -pgo=$(PGO) -ldflags '$(LDFLAGS)' -o dist/tapwatch-linux-amd64 ./cmd/tapwatch

## deb: the Debian packages in dist/: armhf (ARMv6, every 32-bit Pi OS), arm64
## and amd64, made by scripts/deb.sh with nfpm v2.45.2 (go install
## github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2; .ci/run installs it).
deb:
	@for arch in armhf arm64 amd64; do GO='$(GO)' VERSION='$(VERSION)' scripts/deb.sh $$arch dist || exit 1; done

## test-arm: the tests of the decoders, the pipeline, the wire schema, the spool, the hardware
## (LEDs, button, watchdog), the board profiles and the config, for 32- and 64-bit ARM
## under qemu-user (armv6: Pi Zero/1; armv7: 32-bit Pi OS on Pi 2-4; arm64).
## qemu-user cannot set up an AF_PACKET ring (setsockopt PACKET_VERSION fails with "protocol not
## available"), so the tests that capture from a veth pair are skipped there: live capture is tested natively.
## TestLoadFreesGarbage runs its own test binary again in a fresh process, which an ARM binary
## cannot do under qemu-user (exec format error without binfmt); what it checks is the Go
## runtime's heap, the same on every architecture, and it runs natively; so does
## TestLoadLeavesHugePagesAlone, for the same reason (and qemu-user ignores madvise's advice).
## The rules run on armv6, where a 64-bit division is a software routine that the engine's
## windows avoid (rules/window.go). go vet first compiles every package and its tests for
## 32-bit ARM: a constant that overflows a 32-bit int fails there, not on amd64.
ARM_SKIP = TestLive(Veth|Merge|ReadAllocs|StopDrains|InterfaceBack|RingHoldsStall)|TestLinkState|TestDeb$$|TestLoadFreesGarbage|TestLoadLeavesHugePagesAlone
test-arm:
	GOARCH=arm GOARM=6 $(GO) vet ./...
	GOARCH=arm GOARM=6 $(GO) test -count=1 -skip '$(ARM_SKIP)' -exec qemu-arm-static ./dpi/... ./capture/... ./sensor/... ./event/... ./hw/... ./board/... ./config/... ./rules/
	GOARCH=arm GOARM=6 $(GO) test -count=1 -exec qemu-arm-static -run 'Spool|PublishTail|Reconnect' ./uplink/...
	GOARCH=arm GOARM=7 $(GO) test -count=1 -skip '$(ARM_SKIP)' -exec qemu-arm-static ./dpi/... ./capture/... ./event/... ./hw/...
	GOARCH=arm64       $(GO) test -count=1 -skip '$(ARM_SKIP)' -exec qemu-aarch64-static ./dpi/... ./capture/... ./sensor/... ./event/... ./hw/... ./board/... ./config/...
	GOARCH=arm64       $(GO) test -count=1 -exec qemu-aarch64-static -run 'Spool|PublishTail|Reconnect' ./uplink/...

## hil: the GPIO path on an emulated Raspberry Pi (root the first time):
## qemu-system-aarch64 -M raspi3b boots Debian's arm64 kernel with the arm64
## tapwatch, which drives the LEDs and relays and reads the button of the
## emulated GPIO block; a harness checks the pins from the kernel's side.
hil:
	GO=$(GO) scripts/hil-qemu.sh

## fuzz: a short run of every fuzz target (FUZZTIME each, default 10s).
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh

## bench: packets per second and peak RSS of tapwatch replay (every built-in
## detector and a 500-rule policy) against a floor (pcapgo +
## DecodingLayerParser only) on a generated 1M-packet site plant capture
## (pcapgen.SitePlant: 60 % Modbus/TCP, 30 % DNP3, 10 % IT traffic, a rogue
## host), in the same run; then, when valgrind is installed, instructions a
## packet of both under callgrind (GOMAXPROCS=1, 300k- minus 10-packet
## capture); plus the Go benchmarks with allocations. tapbench run -plant
## small measures the small plant (pcapgen.Plant) instead.
bench: build
	$(GO) build -o bin/tapbench ./cmd/tapbench
	bin/tapbench run -n $(BENCH_PACKETS) -rounds $(BENCH_ROUNDS) -tapwatch bin/tapwatch
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./...

## bench-live: live capture (root): "tapwatch run" on one end of a veth pair
## between two namespaces, tcpreplay --topspeed of the bench capture
## (BENCH_PACKETS) from the other, against tcpreplay with nothing capturing;
## packets sent and seen, kernel drops, CPU, and the highest lossless rate.
bench-live: build
	$(GO) build -o bin/tapbench ./cmd/tapbench
	BENCH_LIVE_PACKETS=$(BENCH_PACKETS) scripts/bench-live.sh

clean:
	rm -rf bin dist
