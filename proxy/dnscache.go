package proxy

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// dnsCacheTTL is how long a name's addresses are reused. Go's resolver does
// not report the records' TTLs, so it is a fixed bound, short enough that a
// moved origin is followed within half a minute; without it the suffix
// proxy asked the resolver (and, with no local cache on the host, the
// network's DNS server) on every request.
const dnsCacheTTL = 30 * time.Second

// dnsCacheSize bounds the names remembered; failures are never cached.
const dnsCacheSize = 4096

// dnsCache remembers successful lookups for dnsCacheTTL. Callers check the
// addresses (forbidden destinations) on every use, cached or not.
type dnsCache struct {
	mu      sync.Mutex
	entries map[string]dnsEntry
	now     func() time.Time // time.Now; tests move it
}

type dnsEntry struct {
	addrs []netip.Addr
	exp   time.Time
}

// lookup returns host's addresses from the cache, or from resolve (then
// cached). The slice returned is the caller's to keep but not to modify.
func (c *dnsCache) lookup(ctx context.Context, host string, resolve func(context.Context, string) ([]netip.Addr, error)) ([]netip.Addr, error) {
	now := c.clock()
	c.mu.Lock()
	if e, ok := c.entries[host]; ok && now.Before(e.exp) {
		c.mu.Unlock()
		return e.addrs, nil
	}
	c.mu.Unlock()
	addrs, err := resolve(ctx, host)
	if err != nil || len(addrs) == 0 {
		return addrs, err
	}
	addrs = slices.Clip(addrs)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[string]dnsEntry)
	}
	if _, ok := c.entries[host]; !ok && len(c.entries) >= dnsCacheSize {
		c.evict(now)
	}
	c.entries[host] = dnsEntry{addrs: addrs, exp: now.Add(dnsCacheTTL)}
	return addrs, nil
}

// evict makes room: the expired entries, or if none, one entry.
func (c *dnsCache) evict(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.exp) {
			delete(c.entries, k)
		}
	}
	if len(c.entries) < dnsCacheSize {
		return
	}
	for k := range c.entries {
		delete(c.entries, k)
		return
	}
}

func (c *dnsCache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// lookupHost resolves host through the cache with the server's resolver.
func (s *Server) lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	return s.dns.lookup(ctx, host, func(ctx context.Context, host string) ([]netip.Addr, error) {
		return s.resolver.LookupNetIP(ctx, "ip", host)
	})
}
