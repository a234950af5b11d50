#!/usr/bin/env bash
# Runs every fuzz target for a while each (default 60s). `make test` already
# runs them on their seed corpus; this is the long run.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-60s}
go list -f '{{.Dir}}' ./... | while read -r dir; do
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "== $dir $f ($t)"
    (cd "$dir" && go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" .)
  done
done
