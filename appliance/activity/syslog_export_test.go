package activity

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testPKI makes a CA and a server certificate for 127.0.0.1 signed by it.
func testPKI(t *testing.T) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "syslog receiver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
}

// receiver is a syslog TCP/TLS server reading octet-counted frames.
type receiver struct {
	t      *testing.T
	ln     net.Listener
	format string
	got    chan Event
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startReceiver(t *testing.T, addr, format string, cert *tls.Certificate, got chan Event) *receiver {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port of a closed receiver may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if cert != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12})
	}
	r := &receiver{t: t, ln: ln, format: format, got: got}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

func (r *receiver) addr() string { return r.ln.Addr().String() }

func (r *receiver) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.mu.Unlock()
		r.wg.Add(1)
		go r.read(c)
	}
}

// read decodes frames until the connection ends. A torn last frame (the
// sender died mid-write) is dropped, as a real receiver would.
func (r *receiver) read(c net.Conn) {
	defer r.wg.Done()
	br := bufio.NewReader(c)
	for {
		n, err := br.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
		if err != nil || size <= 0 || size > 64<<10 || n[0] == '0' {
			r.t.Errorf("bad frame length %q", n)
			return
		}
		msg := make([]byte, size)
		if _, err := io.ReadFull(br, msg); err != nil {
			return
		}
		ev, err := decodeReceived(msg, r.format)
		if err != nil {
			r.t.Errorf("%q: %v", msg, err)
			return
		}
		r.got <- ev
	}
}

func decodeReceived(msg []byte, format string) (Event, error) {
	m, err := ParseRFC5424(msg)
	if err != nil {
		return Event{}, err
	}
	if m.MsgID != "activity" || m.AppName != "portcullis" || m.Hostname != "fw1" || m.Facility != FacilityLocal3 {
		return Event{}, fmt.Errorf("header %+v", m)
	}
	if format == "rfc5424" {
		return eventFromSD(m)
	}
	c, err := ParseCEF(m.Msg)
	if err != nil {
		return Event{}, err
	}
	return eventFromCEF(c)
}

// close stops accepting and drops every connection, like a receiver crash.
func (r *receiver) close() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}

type exportCase struct {
	network, format string
}

var exportCases = []exportCase{{"tcp", "rfc5424"}, {"tls", "cef"}, {"tls", "rfc5424"}}

func newExporter(t *testing.T, st *Store, c exportCase) (*Syslog, *tls.Certificate, chan Event) {
	s := &Syslog{Store: st, Network: c.network, Format: c.format, Facility: FacilityLocal3,
		Hostname: "fw1", Batch: 64, Poll: 5 * time.Millisecond, Timeout: 2 * time.Second,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	var cert *tls.Certificate
	if c.network == "tls" {
		pool, crt := testPKI(t)
		s.TLS = &tls.Config{RootCAs: pool}
		cert = &crt
	}
	return s, cert, make(chan Event, 10000)
}

func runExporter(t *testing.T, s *Syslog) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// receive collects events until n distinct ids arrived.
func receive(t *testing.T, got chan Event, n int, into []Event) []Event {
	t.Helper()
	seen := map[string]bool{}
	for _, ev := range into {
		seen[ev.ID.String()] = true
	}
	timeout := time.After(20 * time.Second)
	for len(seen) < n {
		select {
		case ev := <-got:
			into = append(into, ev)
			seen[ev.ID.String()] = true
		case <-timeout:
			t.Fatalf("received %d of %d events", len(seen), n)
		}
	}
	return into
}

// stored returns every stored event as a receiver can see it.
func stored(t *testing.T, st *Store, format string) []Event {
	evs, err := st.ReadAfter("test-reference", maxReadAfter)
	if err != nil {
		t.Fatal(err)
	}
	prec := time.Microsecond
	if format == "cef" {
		prec = time.Millisecond
	}
	for i := range evs {
		evs[i] = normalized(evs[i], prec)
	}
	return evs
}

func TestSyslogExportDeliversEveryEventInOrder(t *testing.T) {
	for _, c := range exportCases {
		t.Run(c.network+"-"+c.format, func(t *testing.T) {
			st, _ := openTest(t, Options{})
			s, cert, got := newExporter(t, st, c)
			r := startReceiver(t, "127.0.0.1:0", c.format, cert, got)
			s.Addr = r.addr()
			const n = 300
			emitN(t, st, 0, n)
			waitWritten(t, st, n)
			runExporter(t, s)
			recv := receive(t, got, n, nil)
			if want := stored(t, st, c.format); !reflect.DeepEqual(recv, want) {
				t.Fatalf("received %d events, want the %d stored in order; first: %+v vs %+v", len(recv), len(want), recv[0], want[0])
			}
		})
	}
}

func TestSyslogExportSurvivesReceiverOutage(t *testing.T) {
	for _, c := range exportCases[:2] {
		t.Run(c.network+"-"+c.format, func(t *testing.T) {
			st, _ := openTest(t, Options{})
			s, cert, got := newExporter(t, st, c)
			r := startReceiver(t, "127.0.0.1:0", c.format, cert, got)
			s.Addr = r.addr()
			runExporter(t, s)

			emitN(t, st, 0, 100)
			recv := receive(t, got, 100, nil)
			r.close()
			emitN(t, st, 100, 250)
			waitWritten(t, st, 250)
			time.Sleep(150 * time.Millisecond) // let the exporter fail a few times
			if cur, _ := st.Cursor("syslog"); cur != 100 {
				t.Fatalf("cursor %d while the receiver was down, want 100", cur)
			}
			startReceiver(t, r.addr(), c.format, cert, got)
			recv = receive(t, got, 250, recv)

			// In order, none lost; a repeat is only allowed for a batch in flight.
			want := stored(t, st, c.format)
			var firsts []Event
			seen := map[string]bool{}
			for _, ev := range recv {
				if !seen[ev.ID.String()] {
					seen[ev.ID.String()] = true
					firsts = append(firsts, ev)
				}
			}
			if !reflect.DeepEqual(firsts, want) {
				t.Fatalf("received %d distinct events, not the %d stored in order", len(firsts), len(want))
			}
			if dup := len(recv) - len(firsts); dup > s.Batch {
				t.Fatalf("%d duplicates, more than one batch (%d)", dup, s.Batch)
			}
		})
	}
}

func TestSyslogTLSVerifiesTheReceiver(t *testing.T) {
	st, _ := openTest(t, Options{})
	_, cert := testPKI(t)
	otherPool, _ := testPKI(t)
	r := startReceiver(t, "127.0.0.1:0", "rfc5424", &cert, make(chan Event, 10))
	emitN(t, st, 0, 3)
	waitWritten(t, st, 3)
	for name, cfg := range map[string]*tls.Config{
		"unknown CA":         {RootCAs: otherPool},
		"InsecureSkipVerify": {InsecureSkipVerify: true},
		"system roots":       nil,
	} {
		s := &Syslog{Store: st, Network: "tls", Addr: r.addr(), TLS: cfg, Timeout: 2 * time.Second}
		if n, err := s.ExportOnce(); err == nil || n != 0 {
			t.Errorf("%s: exported %d events, err %v; want a refused connection", name, n, err)
		}
		var uerr x509.UnknownAuthorityError
		if name == "unknown CA" && !errors.As(exportErr(s), &uerr) {
			t.Errorf("unknown CA: error does not name the unknown authority")
		}
	}
	if cur, _ := st.Cursor("syslog"); cur != 0 {
		t.Fatalf("cursor moved to %d without a verified receiver", cur)
	}
}

// exportErr runs one export for its error.
func exportErr(s *Syslog) error {
	_, err := s.ExportOnce()
	return err
}

func TestSyslogConfigErrors(t *testing.T) {
	st, _ := openTest(t, Options{})
	emitN(t, st, 0, 1)
	waitWritten(t, st, 1)
	for _, s := range []*Syslog{
		{Store: st, Network: "udp", Addr: "127.0.0.1:1"},
		{Store: st, Network: "tcp", Addr: "127.0.0.1:1", Format: "leef"},
	} {
		if _, err := s.ExportOnce(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}
