package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
	"github.com/portcullis-gw/portcullis/internal/lab/rawhttp"
)

// The hostile tests run the pipeline between raw-socket peers: clients that
// send exactly the bytes a case writes, and a rawhttp.Origin that records
// the bytes it gets and parses them strictly. Connections enter through the
// same per-client limit as the real listeners.

// limitedFront is harness.front behind the per-client connection cap.
func (h *harness) limitedFront(dest netip.AddrPort) string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = ln.Close() })
	lln := h.srv.limitListener(ln)
	go func() {
		for {
			c, err := lln.Accept()
			if err != nil {
				return
			}
			ci := h.srv.newConnInfo(ModeTransparent, c)
			ci.Dest = dest
			h.srv.goHandle(c, ci)
		}
	}()
	return ln.Addr().String()
}

// rawOrigin starts a plain recording origin.
func (h *harness) rawOrigin(respond rawhttp.Responder) *rawhttp.Origin {
	return rawhttp.NewOrigin(h.t, rawhttp.OriginOptions{Respond: respond})
}

// rawTLSOrigin starts a recording origin over TLS (HTTP/1.1 only, so an
// HTTP/2 client is downgraded on the way) with a lab leaf for name.
func (h *harness) rawTLSOrigin(name string, respond rawhttp.Responder) *rawhttp.Origin {
	h.t.Helper()
	cert, err := h.labCA.Leaf(lab.LeafOptions{Names: []string{name}})
	if err != nil {
		h.t.Fatal(err)
	}
	return rawhttp.NewOrigin(h.t, rawhttp.OriginOptions{Respond: respond,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}})
}

// clientTLS trusts the appliance CA.
func (h *harness) clientTLS() *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(h.ca.Certificate())
	return &tls.Config{RootCAs: roots}
}

// dialTLS1 opens an HTTP/1.1 TLS connection to front for name.
func (h *harness) dialTLS1(front, local, name string) *rawhttp.Client {
	h.t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	conf := h.clientTLS()
	conf.ServerName, conf.NextProtos = name, []string{"http/1.1"}
	c, err := tls.DialWithDialer(&d, "tcp", front, conf)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	return rawhttp.NewClient(c)
}

func (h *harness) dialH2(front, name string) *rawhttp.H2 {
	h.t.Helper()
	c, err := rawhttp.DialH2(front, "", name, h.clientTLS())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	return c
}

// logLines are the access-log lines whose field key contains want.
func (h *harness) logLines(key, want string) []map[string]any {
	var out []map[string]any
	for _, l := range h.log.lines(h.t) {
		if v, _ := l[key].(string); strings.Contains(v, want) {
			out = append(out, l)
		}
	}
	return out
}

func strconvFormat(n int64) string { return strconv.FormatInt(n, 10) }

type netipAddrPort = netip.AddrPort

func mustParseAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
