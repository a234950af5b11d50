#!/usr/bin/env bash
# Runs every fuzz target in the module for a while each (default 60s).
# Targets are found with `go test -list`, package by package, so a new Fuzz
# function is picked up without editing this file. `make test` already runs
# them on their seed corpus; this is the long run.
#
# A crashing input is written by the fuzzer to the package's
# testdata/fuzz/<Target>/: commit it with the fix so it stays a seed. The run
# goes on past a failing target and exits 1 at the end if any failed.
#
# FUZZPARALLEL sets -parallel (default: GOMAXPROCS). FUZZLOG, when set, gets
# one line per target: package, target, time, result.
set -uo pipefail
cd "$(dirname "$0")/.."
t=${1:-60s}
par=()
[ -n "${FUZZPARALLEL:-}" ] && par=(-parallel "$FUZZPARALLEL")
failed=0
# Only packages with a Fuzz function in a test file are compiled for -list.
for pkg in $(go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r p d; do
  grep -qs '^func Fuzz' "$d"/*_test.go && echo "$p"
done); do
  for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    echo "== $pkg $f ($t)"
    start=$(date +%s)
    if go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "${par[@]}" "$pkg"; then
      res=ok
    else
      res=FAIL
      failed=1
    fi
    [ -n "${FUZZLOG:-}" ] && echo "$pkg $f fuzztime=$t wall=$(( $(date +%s) - start ))s $res" >>"$FUZZLOG"
  done
done
exit $failed
