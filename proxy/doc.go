// Package proxy is the connection and request pipeline shared by every way
// traffic enters the appliance: the transparent listener fed by the eBPF
// datapath, the explicit (CONNECT) proxy, and later the suffix reverse proxy.
//
// Per connection it peeks the ClientHello (SNI, ALPN, JA4), asks a decision
// hook whether to bypass, block or intercept, and for intercepted connections
// terminates TLS with a leaf minted from the appliance CA, proxies HTTP/1.1 and
// HTTP/2 requests through per-request hooks, and talks to the origin over fully
// verified TLS.
package proxy
