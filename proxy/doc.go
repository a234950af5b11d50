// Package proxy is the connection and request pipeline shared by every way
// traffic enters the appliance: the transparent listener fed by the eBPF
// datapath, the explicit (CONNECT) proxy, and later the suffix reverse proxy.
//
// Per connection it peeks the ClientHello (SNI, ALPN, JA4), asks a decision
// hook whether to bypass, block or intercept, and for intercepted connections
// terminates TLS with a leaf minted from the appliance CA, proxies HTTP/1.1 and
// HTTP/2 requests through per-request hooks, and talks to the origin over fully
// verified TLS.
//
// Serving: HTTP/2 and every HTTP/1.1 request that is not plain are served by
// net/http's server (golang.org/x/net/http2 for h2). Plain HTTP/1.1 requests
// (origin form, no body, a well-formed head; h1head.go says exactly what) are
// read and answered by the pipeline's own loop (h1serve.go, h1writer.go),
// which follows net/http's framing rules: net/http's server cost about
// thirteen allocations, a goroutine and a read system call per request that
// the loop does not (measured: bench/results/request-path-20261202-4.md).
// The first request of a connection that is not plain hands the connection,
// with the bytes already read, to net/http for the rest of its life, so
// every malformed or hostile head is judged by net/http.
package proxy
