package scan

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Cached is a verdict cache in front of a Scanner, keyed by the SHA-256 of
// the content: an LRU of at most entries verdicts, each kept for ttl.
// Errors are never kept, so a scanner that could not decide is asked again
// next time. Concurrent scans of the same digest share one scan. Safe for
// concurrent use.
//
// Verdicts are kept across the scanner's signature updates until their ttl
// runs out: a file found clean may be found infected by newer signatures,
// so ttl is how late a new signature may apply to a file already seen.
type Cached struct {
	scanner Scanner
	max     int
	ttl     time.Duration
	now     func() time.Time // tests move time

	mu      sync.Mutex
	entries map[[32]byte]*cacheEntry
	// newest and oldest end the LRU list, linked through the entries.
	newest, oldest *cacheEntry
	flights        map[[32]byte]*flight
}

type cacheEntry struct {
	digest       [32]byte
	verdict      Verdict
	expires      time.Time
	newer, older *cacheEntry
}

// flight is a scan in progress; done is closed when it has finished.
type flight struct {
	done    chan struct{}
	waiters int // calls waiting for this scan (under Cached.mu)
	verdict Verdict
	err     error
	// ownCtx: the scan failed because its caller's context ended, which
	// says nothing about the file, so a waiter scans it itself.
	ownCtx bool
}

// NewCache returns a verdict cache in front of s holding at most entries
// verdicts for ttl each. With entries or ttl at zero or below nothing is
// kept, and only concurrent scans of the same digest are shared.
func NewCache(s Scanner, entries int, ttl time.Duration) *Cached {
	return &Cached{
		scanner: s,
		max:     max(entries, 0),
		ttl:     ttl,
		now:     time.Now,
		entries: make(map[[32]byte]*cacheEntry),
		flights: make(map[[32]byte]*flight),
	}
}

// Name is the scanner's name.
func (c *Cached) Name() string { return c.scanner.Name() }

// Scanner is the scanner behind the cache, for scans whose digest is not
// known before the bytes have passed (a file scanned as it streams): keep
// their verdict with Remember once it is.
func (c *Cached) Scanner() Scanner { return c.scanner }

// Remember keeps v, which a scan of exactly the bytes whose SHA-256 is
// digest gave, as if ScanDigest had scanned them. An infected verdict
// replaces a clean one for the same digest; a clean one never replaces an
// infected one still fresh.
func (c *Cached) Remember(digest [32]byte, v Verdict) {
	v.Cached = false
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[digest]; e != nil && e.verdict.Infected && !v.Infected && c.now().Before(e.expires) {
		return
	}
	c.add(digest, v)
}

// Len is the number of verdicts kept, expired ones not yet dropped included.
func (c *Cached) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// ScanDigest returns the kept verdict for digest, the SHA-256 of the file
// the caller computed, with Cached set; without one it scans r (size bytes,
// -1 when unknown) once for all concurrent callers with the same digest,
// and keeps the verdict. r is read only when this call scans; a caller
// whose verdict came from the cache or another scan gets Cached set and r
// untouched. The caller vouches that digest is r's: a wrong one gives
// another file's verdict.
func (c *Cached) ScanDigest(ctx context.Context, digest [32]byte, r io.Reader, size int64, name string) (Verdict, error) {
	for {
		c.mu.Lock()
		if e := c.entries[digest]; e != nil {
			if c.now().Before(e.expires) {
				c.touch(e)
				v := e.verdict
				c.mu.Unlock()
				v.Cached = true
				return v, nil
			}
			c.remove(e)
		}
		f := c.flights[digest]
		if f == nil {
			break // with mu held: this call scans
		}
		f.waiters++
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return Verdict{}, contextError(c.scanner.Name(), "waiting for the same file's scan", ctx.Err())
		}
		if f.ownCtx {
			continue
		}
		if f.err != nil {
			return Verdict{}, f.err
		}
		v := f.verdict
		v.Cached = true
		return v, nil
	}
	// Until the scanner returns, the flight holds an error: waiters of a
	// scan that panicked get no verdict.
	f := &flight{done: make(chan struct{}), err: errNoVerdict}
	c.flights[digest] = f
	c.mu.Unlock()

	// The deferred part runs even if the scanner panics, so waiters are
	// never left behind.
	defer func() {
		c.mu.Lock()
		delete(c.flights, digest)
		if f.err == nil {
			c.add(digest, f.verdict)
		}
		c.mu.Unlock()
		close(f.done)
	}()
	f.verdict, f.err = c.scanner.Scan(ctx, r, size, name)
	if f.err != nil {
		f.ownCtx = ctx.Err() != nil
		f.verdict = Verdict{}
	}
	return f.verdict, f.err
}

var errNoVerdict = fmt.Errorf("%w: the scan of the same file ended without a verdict", ErrScanner)

// add keeps a verdict as the newest entry, dropping the oldest past max.
func (c *Cached) add(digest [32]byte, v Verdict) {
	if c.max == 0 || c.ttl <= 0 {
		return
	}
	if old := c.entries[digest]; old != nil {
		c.remove(old)
	}
	e := &cacheEntry{digest: digest, verdict: v, expires: c.now().Add(c.ttl)}
	c.entries[digest] = e
	c.pushNewest(e)
	for len(c.entries) > c.max {
		c.remove(c.oldest)
	}
}

func (c *Cached) touch(e *cacheEntry) {
	if c.newest == e {
		return
	}
	c.unlink(e)
	c.pushNewest(e)
}

func (c *Cached) remove(e *cacheEntry) {
	c.unlink(e)
	delete(c.entries, e.digest)
}

func (c *Cached) pushNewest(e *cacheEntry) {
	e.older, e.newer = c.newest, nil
	if c.newest != nil {
		c.newest.newer = e
	}
	c.newest = e
	if c.oldest == nil {
		c.oldest = e
	}
}

func (c *Cached) unlink(e *cacheEntry) {
	if e.newer != nil {
		e.newer.older = e.older
	} else {
		c.newest = e.older
	}
	if e.older != nil {
		e.older.newer = e.newer
	} else {
		c.oldest = e.newer
	}
	e.newer, e.older = nil, nil
}
