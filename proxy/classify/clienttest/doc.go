// Package clienttest runs real clients (Chromium, Firefox ESR, curl, wget,
// Python, Go, git, Node.js, openssl s_client) against a loopback TLS
// server, reads each ClientHello with proxy.ReadClientHello and checks what
// proxy/classify makes of it. It holds only tests: it imports both proxy
// and proxy/classify, which proxy/classify itself may not (the proxy
// imports the classifier). With -update it rewrites
// ../testdata/captures.yaml, the record the classifier's own tests replay
// without running any client.
package clienttest
