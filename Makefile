# Portcullis — build, lab, tests and benchmarks. See README.md.
SHELL := /bin/bash
GO ?= go
# clang is pinned: the committed bpf2go objects are built with this one.
CLANG ?= clang-16
STRIP ?= llvm-strip-16
BIN := bin
TEST_TIMEOUT ?= 30m
FUZZTIME ?= 60s

.PHONY: all build generate deps test test-unit fuzz soak bench demo demo-down demo-clean clean

all: build

# portcullis is built as it ships (no cgo, PIE): make demo runs what installs.
build:
	GO=$(GO) scripts/build-portcullis.sh $(BIN)/portcullis
	$(GO) build -o $(BIN)/lab-origin ./internal/lab/cmd/lab-origin

# Regenerates the committed eBPF objects (needs clang; go build does not).
generate:
	cd agent && BPF2GO_CC=$(CLANG) BPF2GO_STRIP=$(STRIP) $(GO) generate ./...

# The console's third-party assets, pinned in appliance/console/web
# (package-lock.json): npm ci, then copy their dist files into the embedded
# assets (committed, so go build needs no npm). axe-core goes to testdata:
# only the accessibility tests load it.
CONSOLE_WEB := appliance/console/web
CONSOLE_VENDOR := appliance/console/assets/static/vendor
.PHONY: assets
assets:
	cd $(CONSOLE_WEB) && npm ci --ignore-scripts --no-audit --no-fund
	mkdir -p $(CONSOLE_VENDOR) appliance/console/testdata
	cp $(CONSOLE_WEB)/node_modules/htmx.org/dist/htmx.min.js $(CONSOLE_VENDOR)/
	cp $(CONSOLE_WEB)/node_modules/uplot/dist/uPlot.iife.min.js $(CONSOLE_WEB)/node_modules/uplot/dist/uPlot.min.css $(CONSOLE_VENDOR)/
	cp $(CONSOLE_WEB)/node_modules/htmx.org/LICENSE $(CONSOLE_VENDOR)/htmx.LICENSE
	cp $(CONSOLE_WEB)/node_modules/uplot/LICENSE $(CONSOLE_VENDOR)/uPlot.LICENSE
	cp $(CONSOLE_WEB)/node_modules/axe-core/axe.min.js appliance/console/testdata/
	cp $(CONSOLE_WEB)/node_modules/axe-core/LICENSE appliance/console/testdata/axe-core.LICENSE

deps:
	scripts/deps.sh
	$(GO) mod download

# The whole suite: unit, privileged integration (network namespaces, eBPF),
# fuzz targets on their seed corpus. Needs root; CI runs it as root.
# QUIET_TESTS compare a request rate under attack with the rate without it;
# they run on their own after the rest, so the other packages' test
# binaries (Chromium, qemu, the lab) are not what they measure.
QUIET_TESTS := ^TestHostileLoadIdleAndSlowloris$$
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -skip '$(QUIET_TESTS)' ./...
	$(GO) test -count=1 -timeout 5m -run '$(QUIET_TESTS)' -v ./proxy
	$(GO) test -race -count=1 -timeout 20m ./policy/... ./proxy ./proxy/rewrite ./proxy/session ./proxy/classify ./proxy/certcheck ./proxy/protect ./proxy/identity
	$(MAKE) vm-test

fuzz: deps
	scripts/fuzz.sh $(FUZZTIME)

# Long runs: the activity store's search and page budgets at 10 million
# events. Both scale tests use one generated store, kept in SCALE_CACHE
# (about 7 GB) so later runs skip the fill; delete it to build it again.
SCALE_CACHE ?= $(or $(TMPDIR),/tmp)/portcullis-scale
soak: deps
	PORTCULLIS_SCALE_CACHE=$(SCALE_CACHE) PORTCULLIS_ACTIVITY_SCALE=10000000 $(GO) test -count=1 -timeout 90m -run TestSearchScale -v ./appliance/activity
	PORTCULLIS_SCALE_CACHE=$(SCALE_CACHE) PORTCULLIS_ACTIVITY_SCALE=10000000 $(GO) test -count=1 -timeout 60m -run TestPagesScale -v ./appliance/console
	PORTCULLIS_SOAK=1 $(GO) test -count=1 -timeout 20m -run Soak -v ./appliance/activity

bench: deps build
	scripts/bench.sh

# The demo installs only what it needs (scripts/deps.sh demo).
demo: build
	scripts/deps.sh demo
	scripts/lab.sh up
	scripts/demo.sh start

demo-down:
	-scripts/demo.sh stop
	scripts/lab.sh down

# Removes what demo-down leaves: the CA and activity store the demo made.
demo-clean: demo-down
	scripts/demo.sh clean

clean:
	rm -rf $(BIN)

# The Debian package, reproducibly (same commit, same bytes): bin/portcullis_<version>_<arch>.deb.
# VERSION=... overrides the version derived from the last commit.
.PHONY: deb
deb:
	packaging/build-deb.sh $(BIN)

# The appliance VM image (root): Debian 13 from Debian's packages with the
# .deb, bin/portcullis-appliance.qcow2, rebuilt only when the .deb's bytes or
# packaging/image/ change. vm-test boots it under qemu (KVM where it works,
# TCG otherwise) between lab namespaces and checks the appliance through it.
.PHONY: image vm-test box box-test
image:
	packaging/image/build-image.sh "$$(packaging/build-deb.sh $(BIN) | tail -n1)" $(BIN)

vm-test: image
	PORTCULLIS_VM_TEST=1 $(GO) test -count=1 -timeout 25m -run '^TestApplianceVM$$' -v ./packaging/image

# The Vagrant box (libvirt provider) from the same image, and its test:
# vagrant up with libvirt's qemu driver, portcullis status over SSH, destroy.
box: image
	packaging/vagrant/make-box.sh $(BIN)/portcullis-appliance.qcow2 $(BIN)/portcullis-appliance.box

box-test: box
	PORTCULLIS_BOX_TEST=1 $(GO) test -count=1 -timeout 30m -run '^TestVagrantUp$$' -v ./packaging/vagrant
