package agent

// The steering program is compiled by bpf2go into steer_bpfel.o and the Go
// bindings steer_bpfel.go, both committed so that `go build` needs no clang.
// `make generate` pins the compiler (BPF2GO_CC, BPF2GO_STRIP); the headers
// are the vendored ones only (-nostdinc), see scripts/update-bpf-headers.sh.
//
//go:generate go tool bpf2go -target bpfel -type runtime_settings -type counter -type lpm_v4_key -type lpm_v6_key -type flow_v4 -type flow_v6 -type per_cpu_layout -type port_word steer ../bpf/steer.c -- -nostdinc -I../bpf/include -mcpu=v3 -O2 -g -Wall -Werror
