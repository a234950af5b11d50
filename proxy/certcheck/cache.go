package certcheck

import (
	"container/list"
	"crypto/sha256"
	"crypto/x509"
	"math/big"
	"sync"
	"time"
)

// cacheKey names a cached answer. It hashes what the answer is about and
// the issuer key it was verified against, so an answer is never reused for
// a certificate of another issuer that happens to share a serial or a URL.
type cacheKey [sha256.Size]byte

const (
	kindStatus byte = iota + 1 // per certificate: issuer key + serial
	kindStaple                 // per staple: issuer key + serial + staple bytes
	kindCRL                    // per CRL: issuer key + URL
)

func statusKey(issuer *x509.Certificate, serial *big.Int) cacheKey {
	return hashKey(kindStatus, issuer, serialBytes(serial), nil)
}

func stapleKey(issuer *x509.Certificate, serial *big.Int, staple []byte) cacheKey {
	return hashKey(kindStaple, issuer, serialBytes(serial), staple)
}

func crlKey(issuer *x509.Certificate, url string) cacheKey {
	return hashKey(kindCRL, issuer, []byte(url), nil)
}

func hashKey(kind byte, issuer *x509.Certificate, a, b []byte) cacheKey {
	h := sha256.New()
	var lens [9]byte
	lens[0] = kind
	putLen(lens[1:5], len(issuer.RawSubjectPublicKeyInfo))
	putLen(lens[5:9], len(a))
	h.Write(lens[:])
	h.Write(issuer.RawSubjectPublicKeyInfo)
	h.Write(a)
	h.Write(b)
	var k cacheKey
	h.Sum(k[:0])
	return k
}

func putLen(b []byte, n int) {
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

// serialBytes is a serial's identity as map-key material; the sign is
// kept so a (malformed) negative serial never aliases its positive twin.
func serialBytes(s *big.Int) []byte {
	if s == nil {
		return nil
	}
	b := s.Bytes()
	if s.Sign() < 0 {
		b = append([]byte{'-'}, b...)
	}
	return b
}

// lru is a bounded cache with per-entry expiry. Every entry has a cost and
// the total never exceeds max: least recently used entries go first.
type lru[V any] struct {
	mu    sync.Mutex
	max   int64
	used  int64
	items map[cacheKey]*list.Element
	order list.List // of *lruEntry[V], most recent first
}

type lruEntry[V any] struct {
	key     cacheKey
	val     V
	cost    int64
	expires time.Time
}

func newLRU[V any](max int64) *lru[V] {
	return &lru[V]{max: max, items: map[cacheKey]*list.Element{}}
}

func (c *lru[V]) get(k cacheKey, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	ent := e.Value.(*lruEntry[V])
	if !now.Before(ent.expires) {
		c.removeLocked(e)
		var zero V
		return zero, false
	}
	c.order.MoveToFront(e)
	return ent.val, true
}

// put stores v until expires. An entry costing more than the whole cache
// is not stored (the caller still has v).
func (c *lru[V]) put(k cacheKey, v V, cost int64, expires time.Time) {
	if cost < 1 {
		cost = 1
	}
	if cost > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.removeLocked(e)
	}
	c.items[k] = c.order.PushFront(&lruEntry[V]{key: k, val: v, cost: cost, expires: expires})
	c.used += cost
	for c.used > c.max {
		c.removeLocked(c.order.Back())
	}
}

func (c *lru[V]) removeLocked(e *list.Element) {
	ent := c.order.Remove(e).(*lruEntry[V])
	delete(c.items, ent.key)
	c.used -= ent.cost
}

func (c *lru[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// expiry is when an answer valid until nextUpdate stops being used:
// nextUpdate, or thisUpdate+noNextUpdateTTL without one, never more than
// maxCacheTTL from now.
func expiry(now, thisUpdate, nextUpdate time.Time) time.Time {
	until := nextUpdate
	if until.IsZero() {
		until = thisUpdate.Add(noNextUpdateTTL)
	}
	if limit := now.Add(maxCacheTTL); until.After(limit) {
		until = limit
	}
	return until
}
