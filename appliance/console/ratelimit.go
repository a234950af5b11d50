package console

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// loginLimiter bounds login attempts per source: a token bucket per
// address (per /64 for IPv6, which one host usually owns whole). It counts
// attempts, not failures, so a stream of requests on kept-alive connections
// is limited as much as one per connection.
type loginLimiter struct {
	mu      sync.Mutex
	perMin  float64
	burst   float64
	buckets map[netip.Prefix]*bucket
	now     func() time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLoginLimiter(perMinute int, now func() time.Time) *loginLimiter {
	return &loginLimiter{perMin: float64(perMinute), burst: float64(perMinute), buckets: map[netip.Prefix]*bucket{}, now: now}
}

func sourceKey(remoteAddr string) netip.Prefix {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// allow takes one attempt from the source's bucket.
func (l *loginLimiter) allow(remoteAddr string) bool {
	if l.perMin <= 0 {
		return true
	}
	k := sourceKey(remoteAddr)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[k]
	if !ok {
		if len(l.buckets) > 100000 {
			l.gcLocked(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[k] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Minutes()*l.perMin)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// gcLocked drops buckets that have refilled: they hold no information.
func (l *loginLimiter) gcLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Minutes()*l.perMin >= l.burst {
			delete(l.buckets, k)
		}
	}
}
