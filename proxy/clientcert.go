package proxy

import (
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// ClientCertConfig turns on device identity by client certificate in both
// TLS listeners. The handshake asks for a certificate (tls.RequestClientCert,
// naming the configured CAs so browsers pick the right one) and never
// requires one: whether a certificate is needed is a policy's business, so
// a client without one still gets its block page. What the client presented
// is validated once per connection, on first use after the handshake, never
// inside it: a CRL fetch delays that connection's first decision (bounded by
// the checker's timeout), never a handshake.
type ClientCertConfig struct {
	// Checker validates presented chains (certcheck.Checker.ValidClient).
	Checker *certcheck.Checker
	// CAs is the admin's client-CA set. Nil: none yet; the listeners do
	// not ask for certificates until SetClientCerts gives them a set.
	CAs *certcheck.ClientCAs
	// Policy is how strictly revocation is checked.
	Policy certcheck.ClientPolicy
	// UserFrom, when set, names the user a valid certificate identifies
	// (subject CN, a SAN...): DeviceCert.User. Empty results mean none.
	UserFrom func(leaf *x509.Certificate) string
	// CacheEntries bounds the verdict cache (LRU keyed by the SHA-256 of the
	// presented chain and the CA set). Default 4096.
	CacheEntries int
	// CacheTTL bounds how long a verdict is reused, so a revocation
	// published in a CRL takes effect within it (plus the CRL's own cache
	// life). A valid verdict never outlives the leaf's NotAfter. Default 60s.
	CacheTTL time.Duration
}

func (c *ClientCertConfig) setDefaults() {
	if c.CacheEntries == 0 {
		c.CacheEntries = 4096
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = time.Minute
	}
}

// deviceCheckTimeout bounds one validation, every CRL fetch included; the
// checker bounds each fetch on its own.
const deviceCheckTimeout = 10 * time.Second

// DeviceCert is the verdict on the client certificate of one connection.
// It is computed once and shared by every request of the connection: read
// it, never modify it.
type DeviceCert struct {
	// Valid: the certificate counts as valid_client_certificate.
	Valid bool
	// Failure says why not (certcheck.ClientNoCertificate when none was
	// presented); Reason is the checker's explanation.
	Failure certcheck.ClientFailure
	Reason  string
	// SoftFailed: valid although some certificate got no CRL answer.
	SoftFailed bool
	// The leaf's names, set only when Valid: its subject DN, common name,
	// e-mail and DNS subject alternative names.
	Subject    string
	CommonName string
	Emails     []string
	DNSNames   []string
	// User is ClientCertConfig.UserFrom's answer for a valid leaf.
	User string
	// Cached: the verdict came from the verdict cache.
	Cached bool
}

// Tags are the device tags this verdict gives the connection.
func (d *DeviceCert) Tags() []string {
	if d == nil || !d.Valid {
		return nil
	}
	return validCertTags
}

// validCertTags is shared by every valid verdict; nothing appends to it in
// place (its capacity is its length).
var validCertTags = []string{policy.DeviceValidClientCertificate}

// DeviceStats count client-certificate verdicts, one per connection that
// completed a handshake on a listener asking for certificates.
type DeviceStats struct {
	Valid     atomic.Uint64
	CacheHits atomic.Uint64 // verdicts answered from the cache
	// CacheSkipped counts verdicts not cached (the validation ran out of
	// time, so the next connection tries again).
	CacheSkipped atomic.Uint64
	failures     [certcheck.ClientNoCRL + 1]atomic.Uint64
}

// Failures returns how many connections were given each failure (the
// index is the certcheck.ClientFailure; ClientOK stays 0).
func (s *DeviceStats) Failures() []uint64 {
	out := make([]uint64, len(s.failures))
	for i := range s.failures {
		out[i] = s.failures[i].Load()
	}
	return out
}

func (s *DeviceStats) count(d *DeviceCert) {
	if d.Valid {
		s.Valid.Add(1)
	} else if int(d.Failure) < len(s.failures) {
		s.failures[d.Failure].Add(1)
	}
	if d.Cached {
		s.CacheHits.Add(1)
	}
}

// clientCerts is the device-certificate state of a Server: one CA set, its
// generation and the verdict cache.
type clientCerts struct {
	cfg   ClientCertConfig
	stats DeviceStats
	cache *verdictCache
	// set is the CA set in force with its generation; SetClientCAs
	// (clientcertswap.go) replaces it while the server runs.
	set atomic.Pointer[clientCASet]
}

// caGeneration numbers CA sets, so a verdict is never reused across them.
var caGeneration atomic.Uint64

func newClientCerts(cfg ClientCertConfig) (*clientCerts, error) {
	if cfg.Checker == nil {
		return nil, errors.New("client certificates: no checker")
	}
	cfg.setDefaults()
	cc := &clientCerts{cfg: cfg, cache: newVerdictCache(cfg.CacheEntries)}
	cc.set.Store(&clientCASet{cas: cfg.CAs, pol: cfg.Policy, gen: caGeneration.Add(1)})
	return cc, nil
}

// requestCerts makes a listener's TLS config ask for (never require) a
// client certificate from the CAs in force, and not ask while there are
// none.
func (cc *clientCerts) requestCerts(c *tls.Config) {
	if cc == nil {
		return
	}
	first := cc.set.Load()
	first.advertise(c)
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return cc.configFor(c, first), nil }
}

// advertise sets c to ask for certificates from the set's CAs, or not to
// ask when it has none.
func (set *clientCASet) advertise(c *tls.Config) {
	if set.cas == nil {
		c.ClientAuth, c.ClientCAs = tls.NoClientCert, nil
		return
	}
	c.ClientAuth = tls.RequestClientCert
	c.ClientCAs = set.cas.AdvertisePool()
}

// deviceCheck is one connection's pending verdict.
type deviceCheck struct {
	once sync.Once
	cc   *clientCerts
	peer []*x509.Certificate
	res  DeviceCert
}

// noteClientCert attaches the certificates tc's client presented to ci, to
// be validated on first use. It does nothing when no CAs are configured.
func (s *Server) noteClientCert(ci *ConnInfo, tc *tls.Conn) {
	if s.clientCerts == nil || s.clientCerts.set.Load().cas == nil {
		return
	}
	ci.device = &deviceCheck{cc: s.clientCerts, peer: tc.ConnectionState().PeerCertificates}
}

func (d *deviceCheck) verdict() *DeviceCert {
	d.once.Do(func() {
		d.res = d.cc.validate(d.peer)
		d.cc.stats.count(&d.res)
		d.peer = nil
	})
	return &d.res
}

func (cc *clientCerts) validate(peer []*x509.Certificate) DeviceCert {
	if len(peer) == 0 {
		return DeviceCert{Failure: certcheck.ClientNoCertificate, Reason: "no client certificate presented"}
	}
	set := cc.set.Load()
	if set.cas == nil {
		return DeviceCert{Failure: certcheck.ClientNoCAs, Reason: "no device CAs are configured"}
	}
	key := verdictKey(set.gen, peer)
	now := time.Now()
	if d, ok := cc.cache.get(key, now); ok {
		d.Cached = true
		return d
	}
	ctx, cancel := context.WithTimeout(context.Background(), deviceCheckTimeout)
	r := cc.cfg.Checker.ValidClient(ctx, set.cas, peer, set.pol)
	timedOut := ctx.Err() != nil
	cancel()
	d := DeviceCert{Valid: r.Valid, Failure: r.Failure, Reason: r.Reason, SoftFailed: r.SoftFailed}
	expires := now.Add(cc.cfg.CacheTTL)
	if r.Valid {
		leaf := peer[0]
		d.Subject, d.CommonName = r.Subject, leaf.Subject.CommonName
		d.Emails, d.DNSNames = leaf.EmailAddresses, leaf.DNSNames
		if cc.cfg.UserFrom != nil {
			d.User = cc.cfg.UserFrom(leaf)
		}
		expires = minTime(expires, leaf.NotAfter)
	}
	if timedOut {
		cc.stats.CacheSkipped.Add(1)
	} else {
		cc.cache.put(key, d, expires)
	}
	return d
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// verdictKey hashes the CA set's generation and every presented
// certificate (length-prefixed): the same leaf with other intermediates can
// get another verdict.
func verdictKey(gen uint64, peer []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var b [8]byte
	for i := range b {
		b[i] = byte(gen >> (8 * i))
	}
	h.Write(b[:])
	for _, c := range peer {
		n := len(c.Raw)
		b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		h.Write(b[:4])
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// verdictCache is a small LRU of verdicts with an expiry each.
type verdictCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[[sha256.Size]byte]*list.Element
}

type verdictEntry struct {
	key     [sha256.Size]byte
	d       DeviceCert
	expires time.Time
}

func newVerdictCache(max int) *verdictCache {
	return &verdictCache{max: max, ll: list.New(), items: map[[sha256.Size]byte]*list.Element{}}
}

func (c *verdictCache) get(k [sha256.Size]byte, now time.Time) (DeviceCert, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return DeviceCert{}, false
	}
	e := el.Value.(*verdictEntry)
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.items, k)
		return DeviceCert{}, false
	}
	c.ll.MoveToFront(el)
	return e.d, true
}

func (c *verdictCache) put(k [sha256.Size]byte, d DeviceCert, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		el.Value = &verdictEntry{key: k, d: d, expires: expires}
		c.ll.MoveToFront(el)
		return
	}
	c.items[k] = c.ll.PushFront(&verdictEntry{key: k, d: d, expires: expires})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*verdictEntry).key)
	}
}

// Device returns the connection's client-certificate verdict, validating
// the presented chain on the first call. It is nil when the listener does
// not ask for certificates (no client CAs configured) or before the
// client-side handshake (the access decision on the ClientHello).
func (ci *ConnInfo) Device() *DeviceCert {
	if ci == nil || ci.device == nil {
		return nil
	}
	return ci.device.verdict()
}

// DeviceTags are the connection's device tags from its client certificate.
func (ci *ConnInfo) DeviceTags() []string { return ci.Device().Tags() }

// DeviceStats are the client-certificate verdict counters; nil when no
// client CAs are configured.
func (s *Server) DeviceStats() *DeviceStats {
	if s.clientCerts == nil {
		return nil
	}
	return &s.clientCerts.stats
}
