package proxy

import (
	"container/list"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

const (
	leafValidity = 7 * 24 * time.Hour
	// leafBackdate tolerates clients whose clocks run behind the appliance's.
	leafBackdate = time.Hour
	// leafRefresh is how long before NotAfter a cached leaf is re-minted, so
	// no client ever receives one about to expire.
	leafRefresh = 24 * time.Hour
)

// CertStoreOptions tunes a CertStore; zero values mean the defaults.
type CertStoreOptions struct {
	// CacheSize bounds the cached leaves; the least recently used is evicted.
	// Default 4096.
	CacheSize int
	// KeyPoolSize is how many leaf keys are generated ahead. Default 64.
	KeyPoolSize int

	now func() time.Time // tests move the clock
}

// CertStoreStats counts since the store was made.
type CertStoreStats struct {
	Hits   uint64 // served from the cache
	Misses uint64 // not cached (a concurrent caller may have minted it)
	Mints  uint64 // leaves signed
	// PoolEmpty counts mints that found the key pool empty and used the
	// fallback key; a steady rise means KeyPoolSize is too small for the
	// rate of new names.
	PoolEmpty uint64
}

// CertStore mints and caches the leaves presented to intercepted clients.
//
// Key generation never happens on the handshake path: leaf keys come from a
// pool a background goroutine keeps full. When a burst of new names drains
// the pool, the leaf gets the store's fallback key instead, generated once in
// NewCertStore. Sharing a leaf key between names costs nothing here: every
// leaf key lives in this process next to the CA key, which is the secret that
// matters, and a leaf is only ever trusted through that CA.
type CertStore struct {
	// ca is the CA leaves are minted from; SetCA swaps it (reload).
	ca       atomic.Pointer[CA]
	opt      CertStoreOptions
	keys     chan *ecdsa.PrivateKey
	fallback *ecdsa.PrivateKey
	flight   singleflight.Group

	mu     sync.Mutex
	lru    *list.List // of *cachedLeaf, most recently used first
	byName map[string]*list.Element

	hits, misses, mints, poolEmpty atomic.Uint64

	stop      chan struct{}
	closeOnce sync.Once
	refilling sync.WaitGroup
}

type cachedLeaf struct {
	name    string
	cert    *tls.Certificate
	refresh time.Time // re-mint from here on
	ca      *CA       // the CA it chains to; another CA's leaf is never served
}

// mintedLeaf is a flight's result: the leaf and the CA that signed it.
type mintedLeaf struct {
	cert *tls.Certificate
	ca   *CA
}

// NewCertStore starts a store minting from ca. Call Close to stop its key
// generator.
func NewCertStore(ca *CA, opt CertStoreOptions) *CertStore {
	if opt.CacheSize <= 0 {
		opt.CacheSize = 4096
	}
	if opt.KeyPoolSize <= 0 {
		opt.KeyPoolSize = 64
	}
	if opt.now == nil {
		opt.now = time.Now
	}
	s := &CertStore{
		opt:    opt,
		keys:   make(chan *ecdsa.PrivateKey, opt.KeyPoolSize),
		lru:    list.New(),
		byName: make(map[string]*list.Element),
		stop:   make(chan struct{}),
	}
	s.ca.Store(ca)
	// crypto/rand does not fail on supported platforms; should it, minting
	// reports the missing key instead of the constructor failing.
	s.fallback, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s.refilling.Add(1)
	go s.refill()
	return s
}

// Close stops the key generator. Certificate keeps working afterwards, on
// the keys left in the pool and then the fallback key.
func (s *CertStore) Close() {
	s.closeOnce.Do(func() { close(s.stop) })
	s.refilling.Wait()
}

// Stats returns the counters.
func (s *CertStore) Stats() CertStoreStats {
	return CertStoreStats{
		Hits:      s.hits.Load(),
		Misses:    s.misses.Load(),
		Mints:     s.mints.Load(),
		PoolEmpty: s.poolEmpty.Load(),
	}
}

// CA returns the CA leaves are minted from now.
func (s *CertStore) CA() *CA { return s.ca.Load() }

// SetCA makes ca the CA of every leaf minted from now on and empties the
// cache: no handshake after SetCA returns is served a leaf of the old CA.
// ca must have been loaded and checked (LoadCA) before; it is used as is.
func (s *CertStore) SetCA(ca *CA) {
	if ca == nil {
		return
	}
	s.ca.Store(ca)
	s.mu.Lock()
	s.lru.Init()
	clear(s.byName)
	s.mu.Unlock()
}

// Certificate returns the chain (leaf, CA and the CA's intermediates) for
// name, a host name or an IP literal. Concurrent calls for one name share
// a single mint.
func (s *CertStore) Certificate(name string) (*tls.Certificate, error) {
	key, err := certName(name)
	if err != nil {
		return nil, err
	}
	if c := s.cached(key); c != nil {
		s.hits.Add(1)
		return c, nil
	}
	s.misses.Add(1)
	// A flight that started before SetCA yields the old CA's leaf: its
	// callers take the next flight instead (bounded: a CA swap is rare).
	for range 3 {
		v, err, _ := s.flight.Do(key, func() (any, error) {
			// A flight for this name may have finished since the lookup above.
			if c := s.cached(key); c != nil {
				return mintedLeaf{c, s.ca.Load()}, nil
			}
			ca := s.ca.Load()
			c, refresh, err := s.mint(key, ca)
			if err != nil {
				return nil, err
			}
			s.store(key, c, refresh, ca)
			return mintedLeaf{c, ca}, nil
		})
		if err != nil {
			return nil, err
		}
		if m := v.(mintedLeaf); m.ca == s.ca.Load() {
			return m.cert, nil
		}
	}
	return nil, errors.New("mint leaf: the CA changed during every attempt")
}

// certName validates and canonicalises a name, which is also the cache key:
// IP literals in their canonical form (IPv4-mapped IPv6 as IPv4), host names
// lowercased without a trailing dot.
func certName(name string) (string, error) {
	if addr, ok := parseIPLiteral(name); ok {
		if addr.Zone() != "" {
			return "", fmt.Errorf("%w %q: a scoped address cannot be certified", ErrInvalidCertName, name)
		}
		return addr.Unmap().String(), nil
	}
	host, err := normalizeHostname(name)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrInvalidCertName, name, err)
	}
	return host, nil
}

// parseIPLiteral parses name as an IP address only when it could be one:
// a failed netip.ParseAddr allocates its error, and host names are the
// common case on the cached path.
func parseIPLiteral(name string) (netip.Addr, bool) {
	if !strings.Contains(name, ":") && strings.Trim(name, "0123456789.") != "" {
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(name)
	return addr, err == nil
}

func (s *CertStore) cached(name string) *tls.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.byName[name]
	if !ok {
		return nil
	}
	e := el.Value.(*cachedLeaf)
	if !s.opt.now().Before(e.refresh) || e.ca != s.ca.Load() {
		s.lru.Remove(el)
		delete(s.byName, name)
		return nil
	}
	s.lru.MoveToFront(el)
	return e.cert
}

func (s *CertStore) store(name string, c *tls.Certificate, refresh time.Time, ca *CA) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ca != s.ca.Load() {
		return // minted under a CA swapped out since
	}
	if el, ok := s.byName[name]; ok {
		s.lru.Remove(el)
	}
	s.byName[name] = s.lru.PushFront(&cachedLeaf{name: name, cert: c, refresh: refresh, ca: ca})
	for s.lru.Len() > s.opt.CacheSize {
		oldest := s.lru.Back()
		s.lru.Remove(oldest)
		delete(s.byName, oldest.Value.(*cachedLeaf).name)
	}
}

// mint signs a leaf for a canonical name with ca and says when to re-mint
// it.
func (s *CertStore) mint(name string, ca *CA) (*tls.Certificate, time.Time, error) {
	key := s.leafKey()
	if key == nil {
		return nil, time.Time{}, errors.New("mint leaf: key pool empty and no fallback key")
	}
	now := s.opt.now()
	notAfter := now.Add(leafValidity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter // a leaf never outlives its CA
	}
	if !notAfter.After(now) {
		return nil, time.Time{}, fmt.Errorf("mint leaf: CA certificate expired on %s", ca.cert.NotAfter.Format(time.DateOnly))
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("mint leaf: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-leafBackdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		AuthorityKeyId:        ca.cert.SubjectKeyId,
	}
	if len(name) <= 64 { // the X.520 upper bound; clients read the SAN anyway
		tmpl.Subject.CommonName = name
	}
	if ip, ok := parseIPLiteral(name); ok {
		tmpl.IPAddresses = []net.IP{ip.AsSlice()}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("mint leaf for %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("mint leaf for %s: %w", name, err)
	}
	s.mints.Add(1)
	refresh := notAfter.Add(-min(leafRefresh, notAfter.Sub(now)/2))
	return &tls.Certificate{
		Certificate: append([][]byte{der}, ca.served...),
		PrivateKey:  key,
		Leaf:        leaf,
	}, refresh, nil
}

// leafKey takes a pooled key, or the fallback key when the pool is empty:
// never generating one here keeps a burst of new names from stalling
// handshakes.
func (s *CertStore) leafKey() *ecdsa.PrivateKey {
	select {
	case k := <-s.keys:
		return k
	default:
		s.poolEmpty.Add(1)
		return s.fallback
	}
}

func (s *CertStore) refill() {
	defer s.refilling.Done()
	for {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			select { // back off instead of spinning on a broken entropy source
			case <-time.After(time.Second):
				continue
			case <-s.stop:
				return
			}
		}
		select {
		case s.keys <- key:
		case <-s.stop:
			return
		}
	}
}
