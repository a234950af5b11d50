package certcheck_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/revocationlab"
	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// pki is a root → intermediate hierarchy whose OCSP responders and CRLs
// are served on loopback by the test's own Responder.
type pki struct {
	r           *revocationlab.Responder
	root, inter *revocationlab.CA
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	r, err := revocationlab.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	root, err := revocationlab.NewRoot(r, "Lab Root")
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("Lab Intermediate")
	if err != nil {
		t.Fatal(err)
	}
	return &pki{r: r, root: root, inter: inter}
}

func (p *pki) server(t testing.TB, o revocationlab.CertOptions) *revocationlab.Issued {
	t.Helper()
	is, err := p.inter.ServerCert(o)
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func newChecker(t testing.TB, cfg certcheck.Config) *certcheck.Checker {
	t.Helper()
	c, err := certcheck.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serveTLS runs a real TLS origin on 127.0.0.1 presenting cert (with its
// OCSPStaple, if any) and returns its address.
func serveTLS(t testing.TB, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				if conn.(*tls.Conn).Handshake() == nil {
					io.WriteString(conn, "hello from origin\n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// handshake connects to an origin serving is (stapling staple) as the
// proxy's upstream side would: std verification against the lab root, then
// c through VerifyConnection. It returns the checker's Outcome and the
// handshake error.
func handshake(t testing.TB, p *pki, c *certcheck.Checker, is *revocationlab.Issued, staple []byte) (certcheck.Outcome, error) {
	t.Helper()
	cert := is.TLS
	cert.OCSPStaple = staple
	addr := serveTLS(t, cert)
	var out certcheck.Outcome
	var called bool
	cfg := &tls.Config{
		RootCAs:    p.root.Pool(),
		ServerName: "localhost",
		MinVersion: tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			called = true
			var err error
			out, err = c.VerifyChain(context.Background(), cs.VerifiedChains[0], cs.OCSPResponse)
			return err
		},
	}
	err := dialTLS(addr, cfg)
	if !called && err == nil {
		t.Fatal("VerifyConnection was not called")
	}
	return out, err
}

func dialTLS(addr string, cfg *tls.Config) error {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if string(b) != "hello from origin\n" {
		return errors.New("origin said " + string(b))
	}
	return nil
}

func wantGood(t *testing.T, out certcheck.Outcome, err error, source string) {
	t.Helper()
	if err != nil {
		t.Fatalf("refused: %v (outcome %+v)", err, out)
	}
	if out.Status != certcheck.Good || out.SoftFailed || out.Source != source {
		t.Fatalf("outcome %+v, want good from %s", out, source)
	}
}

func wantRefused(t *testing.T, out certcheck.Outcome, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v (outcome %+v), want %v", err, out, target)
	}
}

func staple(t testing.TB, ca *revocationlab.CA, cert *x509.Certificate, mode revocationlab.OCSPMode) []byte {
	t.Helper()
	b, err := ca.Staple(cert, mode)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unreachable(t testing.TB, path string) string {
	t.Helper()
	u, err := revocationlab.UnreachableURL(path)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
