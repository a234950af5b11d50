#!/usr/bin/env bash
# make bench: Go micro-benchmarks of the hot functions, then the lab harness
# (appliance.BenchmarkLab), which measures every path through the gateway
# against direct routing in the same run. Results go to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
# The lab harness measures squid (ssl-bump) as a peer: the bench profile
# installs it (disabled at boot; the benchmark starts its own).
scripts/deps.sh bench
out=bench/results
mkdir -p "$out"
stamp=$(date -u +%Y%m%d-%H%M%S)
{
  echo "# go test -bench, $(date -u +%FT%TZ), $(go version), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
  go test -run '^$' -bench . -benchmem -count 3 ./proxy/... ./policy/... ./appliance/activity
  go test -run '^$' -bench '^BenchmarkProgram' -benchmem -count 3 ./agent
  # Kernel-side cost of the steering program per path, with an empty program
  # on the same hook as the floor, and throughput attached vs not.
  go test -run '^$' -bench '^BenchmarkDatapath(Kernel|Throughput)$' -benchtime 5x ./agent
  # The lab mix (bypassed, not intercepted, intercepted) against an empty
  # program attached ahead of the steering program, same packets, 7 rounds.
  go test -run '^$' -bench '^BenchmarkDatapathLabMix$' -benchtime 1x ./agent
} | tee "$out/go-$stamp.txt"
go test -run '^$' -bench '^BenchmarkLab$' -benchtime 1x -timeout 30m -v ./appliance | tee "$out/lab-$stamp.txt"
# Downloads through session policies (no policy vs monitor + DLP, held
# block + DLP, monitor + clamd scan) and RSS for 1 GiB: lab-session-<date>.md.
go test -run '^$' -bench '^BenchmarkLabSession$' -benchtime 1x -timeout 30m -v ./appliance | tee "$out/lab-session-$stamp.txt"
# Kernel-forwarded downloads (bypassed prefix, port not intercepted) with
# their direct baselines alternated per round: lab-forwarding-<stamp>.md.
go test -run '^$' -bench '^BenchmarkLabForwarding$' -benchtime 1x -timeout 30m -v ./appliance | tee "$out/lab-forwarding-$stamp.txt"
# GETs and 1 KiB POSTs mixed on keep-alive connections (wrk script), direct
# and through the appliance alternated: lab-postmix-<stamp>.md.
go test -run '^$' -bench '^BenchmarkLabPostMix$' -benchtime 1x -timeout 30m -v ./appliance | tee "$out/lab-postmix-$stamp.txt"
# HTTP/2 keep-alive, the protocol browsers speak to the appliance (h2load),
# direct and intercepted alternated, HTTP/1.1 in the same rounds:
# lab-h2-<stamp>.md.
go test -run '^$' -bench '^BenchmarkLabH2$' -benchtime 1x -timeout 30m -v ./appliance | tee "$out/lab-h2-$stamp.txt"
# Bulk download over HTTP/2 and HTTP/1.1, direct and intercepted alternated,
# with CPU and system calls per MiB: lab-download-<stamp>.md.
go test -run '^$' -bench '^BenchmarkLabDownload$' -benchtime 1x -timeout 30m -v ./appliance | tee "$out/lab-download-$stamp.txt"
echo "results: $out/go-$stamp.txt $out/lab-$stamp.txt $out/lab-latest.md $out/lab-session-$(date -u +%Y%m%d).md"
