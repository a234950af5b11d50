package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestStore(t testing.TB, opt CertStoreOptions) *CertStore {
	t.Helper()
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := NewCertStore(ca, opt)
	t.Cleanup(s.Close)
	return s
}

// verifyLeaf mints a leaf for name and verifies it as a TLS client would,
// trusting only ca.
func verifyLeaf(t *testing.T, s *CertStore, ca *CA, name string) *x509.Certificate {
	t.Helper()
	c, err := s.Certificate(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Certificate) != 2 || !bytes.Equal(c.Certificate[1], ca.Certificate().Raw) {
		t.Fatalf("%s: chain is not leaf + CA", name)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !c.PrivateKey.(*ecdsa.PrivateKey).PublicKey.Equal(leaf.PublicKey) {
		t.Fatalf("%s: private key does not match the leaf", name)
	}
	return leaf
}

func TestCertStoreLeafVerifies(t *testing.T) {
	s := newTestStore(t, CertStoreOptions{})
	ca := s.CA()
	for _, name := range []string{"example.com", "a-b_c.example.org", "192.0.2.7", "2001:db8::1"} {
		leaf := verifyLeaf(t, s, ca, name)
		if !bytes.Equal(leaf.AuthorityKeyId, ca.Certificate().SubjectKeyId) {
			t.Errorf("%s: authority key id %x, CA subject key id %x", name, leaf.AuthorityKeyId, ca.Certificate().SubjectKeyId)
		}
		if leaf.IsCA || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
			t.Errorf("%s: IsCA %v, ext key usage %v", name, leaf.IsCA, leaf.ExtKeyUsage)
		}
		if d := leaf.NotAfter.Sub(leaf.NotBefore); d != leafValidity+leafBackdate {
			t.Errorf("%s: validity %v", name, d)
		}
		if ago := time.Since(leaf.NotBefore); ago < 59*time.Minute || ago > 61*time.Minute {
			t.Errorf("%s: NotBefore %v ago, want 1h", name, ago)
		}
	}
}

func TestCertStoreCanonicalNames(t *testing.T) {
	s := newTestStore(t, CertStoreOptions{})
	a, err := s.Certificate("Example.COM.")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Certificate("example.com"); b != a {
		t.Error("differently written host name minted again")
	}
	v4, err := s.Certificate("::ffff:192.0.2.9")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Certificate("192.0.2.9"); b != v4 {
		t.Error("IPv4-mapped address minted again")
	}
	for _, bad := range []string{"", ".", "exa mple.com", "a..b", "*.example.com", "fe80::1%eth0", "[::1]", "example.com:443", "bücher.example", "a\x00b"} {
		if _, err := s.Certificate(bad); !errors.Is(err, ErrInvalidCertName) {
			t.Errorf("%q: got %v, want ErrInvalidCertName", bad, err)
		}
	}
}

func TestCertStoreCacheHit(t *testing.T) {
	s := newTestStore(t, CertStoreOptions{})
	first, err := s.Certificate("hit.example")
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Certificate("hit.example")
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Fatal("cached certificate is not the same pointer")
	}
	if st := s.Stats(); st.Hits != 1 || st.Misses != 1 || st.Mints != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCertStoreSingleFlight(t *testing.T) {
	s := newTestStore(t, CertStoreOptions{})
	const callers = 32
	var wg sync.WaitGroup
	var start sync.WaitGroup
	start.Add(1)
	certs := make([]any, callers)
	for i := range callers {
		wg.Go(func() {
			start.Wait()
			c, err := s.Certificate("flight.example")
			if err != nil {
				t.Error(err)
			}
			certs[i] = c
		})
	}
	start.Done()
	wg.Wait()
	if st := s.Stats(); st.Mints != 1 {
		t.Fatalf("%d concurrent callers minted %d times", callers, st.Mints)
	}
	for _, c := range certs {
		if c != certs[0] {
			t.Fatal("callers got different certificates")
		}
	}
}

func TestCertStoreEvictsLeastRecentlyUsed(t *testing.T) {
	s := newTestStore(t, CertStoreOptions{CacheSize: 2})
	get := func(name string) {
		if _, err := s.Certificate(name); err != nil {
			t.Fatal(err)
		}
	}
	get("a.example")
	get("b.example")
	get("a.example") // a is now the most recently used
	get("c.example") // evicts b
	if st := s.Stats(); st.Mints != 3 {
		t.Fatalf("mints %d, want 3", st.Mints)
	}
	get("a.example")
	if st := s.Stats(); st.Mints != 3 {
		t.Fatal("a was evicted instead of b")
	}
	get("b.example")
	if st := s.Stats(); st.Mints != 4 {
		t.Fatal("b was not evicted")
	}
}

func TestCertStoreRefreshesBeforeExpiry(t *testing.T) {
	var now atomic.Pointer[time.Time]
	t0 := time.Now()
	now.Store(&t0)
	s := newTestStore(t, CertStoreOptions{now: func() time.Time { return *now.Load() }})
	first, err := s.Certificate("expiry.example")
	if err != nil {
		t.Fatal(err)
	}
	later := t0.Add(leafValidity - leafRefresh - time.Minute)
	now.Store(&later)
	if c, _ := s.Certificate("expiry.example"); c != first {
		t.Fatal("re-minted a leaf with more than a day left")
	}
	nearEnd := t0.Add(leafValidity - leafRefresh + time.Minute)
	now.Store(&nearEnd)
	c, err := s.Certificate("expiry.example")
	if err != nil {
		t.Fatal(err)
	}
	if c == first || !c.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Fatal("served a leaf within a day of expiry")
	}
}

func TestCertStoreEmptyPoolUsesFallbackKey(t *testing.T) {
	s := newTestStore(t, CertStoreOptions{KeyPoolSize: 1})
	s.Close() // stop refilling, then drain what is there
	for len(s.keys) > 0 {
		<-s.keys
	}
	c, err := s.Certificate("fallback.example")
	if err != nil {
		t.Fatal(err)
	}
	if c.PrivateKey != s.fallback {
		t.Fatal("empty pool: leaf does not use the fallback key")
	}
	if st := s.Stats(); st.PoolEmpty != 1 {
		t.Fatalf("pool empty events %d, want 1", st.PoolEmpty)
	}
}

// BenchmarkMintLeaf measures a cold Certificate call (new name each time):
// "handshake-path" with the key pool drained, so it is signing and caching
// only, as on a handshake during a burst; "with-pool" with the generator
// running on the other core; "baseline-keygen" is the ECDSA P-256 key
// generation the pool keeps off the handshake path, for the ratio.
func BenchmarkMintLeaf(b *testing.B) {
	b.Run("handshake-path", func(b *testing.B) {
		s := newTestStore(b, CertStoreOptions{CacheSize: 1 << 20})
		s.Close()
		benchMint(b, s)
	})
	b.Run("with-pool", func(b *testing.B) {
		benchMint(b, newTestStore(b, CertStoreOptions{CacheSize: 1 << 20}))
	})
	b.Run("baseline-keygen", func(b *testing.B) {
		for b.Loop() {
			if _, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchMint(b *testing.B, s *CertStore) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := s.Certificate(fmt.Sprintf("n%d.bench.example", i)); err != nil {
			b.Fatal(err)
		}
	}
	st := s.Stats()
	b.ReportMetric(float64(st.PoolEmpty)/float64(st.Mints), "pool-empty/mint")
}

func BenchmarkCertificateCached(b *testing.B) {
	s := newTestStore(b, CertStoreOptions{})
	if _, err := s.Certificate("cached.example"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Certificate("cached.example"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
