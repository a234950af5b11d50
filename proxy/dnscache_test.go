package proxy

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a DNS server on loopback UDP answering A queries for
// known names (NXDOMAIN for the rest, no AAAA records) and counting them.
type dnsServer struct {
	pc      net.PacketConn
	names   map[string][4]byte // "name." → address
	queries atomic.Int64       // A queries received
}

func newDNSServer(t *testing.T, names map[string][4]byte) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{pc: pc, names: names}
	t.Cleanup(func() { _ = pc.Close() })
	go s.serve()
	return s
}

func (s *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		addr, known := s.names[q.Name.String()]
		resp := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true}
		if !known {
			resp.RCode = dnsmessage.RCodeNameError
		}
		b := dnsmessage.NewBuilder(nil, resp)
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		if q.Type == dnsmessage.TypeA {
			s.queries.Add(1)
			if known {
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 3600}, dnsmessage.AResource{A: addr})
			}
		}
		out, err := b.Finish()
		if err == nil {
			_, _ = s.pc.WriteTo(out, from)
		}
	}
}

func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.pc.LocalAddr().String())
	}}
}

// A name is asked once per dnsCacheTTL, not per lookup; failures are asked
// again every time; the addresses come back as the server gave them.
func TestDNSCacheReusesLookups(t *testing.T) {
	dns := newDNSServer(t, map[string][4]byte{"app.test.": {198, 18, 9, 1}})
	now := time.Unix(1_800_000_000, 0)
	s := &Server{resolver: dns.resolver()}
	s.dns.now = func() time.Time { return now }
	ctx := context.Background()
	want := netip.MustParseAddr("198.18.9.1")
	for i := range 5 {
		addrs, err := s.lookupHost(ctx, "app.test")
		if err != nil || len(addrs) != 1 || addrs[0].Unmap() != want {
			t.Fatalf("lookup %d: %v, %v", i, addrs, err)
		}
	}
	if n := dns.queries.Load(); n != 1 {
		t.Fatalf("%d queries for 5 lookups within the TTL, want 1", n)
	}
	now = now.Add(dnsCacheTTL)
	if _, err := s.lookupHost(ctx, "app.test"); err != nil {
		t.Fatal(err)
	}
	if n := dns.queries.Load(); n != 2 {
		t.Fatalf("%d queries after the TTL, want 2", n)
	}
	for range 3 {
		if _, err := s.lookupHost(ctx, "gone.test"); err == nil {
			t.Fatal("gone.test resolved")
		}
	}
	if n := dns.queries.Load(); n != 5 {
		t.Fatalf("%d queries after 3 failed lookups, want 5 (failures are not cached)", n)
	}
}

// The cache never holds more than dnsCacheSize names.
func TestDNSCacheBounded(t *testing.T) {
	var c dnsCache
	resolve := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("198.18.9.2")}, nil
	}
	for i := range dnsCacheSize + 100 {
		if _, err := c.lookup(context.Background(), "h"+strconv.Itoa(i)+".test", resolve); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.entries); n > dnsCacheSize {
		t.Fatalf("%d names cached, bound %d", n, dnsCacheSize)
	}
}
