#!/usr/bin/env bash
# Builds cmd/portcullis the way it ships, for every caller: the package
# (packaging/build-deb.sh), `make build` (and so `make demo`) and the e2e
# tests and lab benchmarks (appliance/e2e_lab_test.go), so that what runs
# and what is measured is what is installed. No cgo, position independent
# (ASLR; the only ELF dependency is the dynamic loader), and no build paths
# or VCS stamps in it.
# Usage: scripts/build-portcullis.sh OUT [go build flags...]
#   GO, GOOS, GOARCH as for go build.
set -euo pipefail
if [[ $# -lt 1 ]]; then
	echo "usage: $0 OUT [go build flags...]" >&2
	exit 2
fi
out=$(realpath -m -- "$1")
shift
cd "$(dirname "$0")/.."
CGO_ENABLED=0 exec "${GO:-go}" build -buildmode=pie -trimpath -buildvcs=false "$@" -o "$out" ./cmd/portcullis
