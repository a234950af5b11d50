package revocationlab

import (
	"net"
	"net/http"
	"strings"
	"time"
)

// StartOn serves on ln (which it then owns) until Close, for a responder
// that must be reached from elsewhere than the test process's loopback — a
// lab namespace, say. baseURL is what issued certificates name in AIA and
// CRL distribution points (e.g. "http://198.18.2.2:8080"); it must reach ln.
func StartOn(ln net.Listener, baseURL string) *Responder {
	r := &Responder{
		ln:        ln,
		url:       strings.TrimSuffix(baseURL, "/"),
		cas:       map[string]*CA{},
		hits:      map[string]int{},
		hugeBytes: 1 << 20,
	}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	return r
}
