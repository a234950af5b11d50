package certcheck

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/revocationlab"
)

func TestLRU(t *testing.T) {
	now := time.Now()
	later := now.Add(time.Hour)
	c := newLRU[int](10)
	k := func(b byte) cacheKey { return cacheKey{b} }
	c.put(k(1), 1, 4, later)
	c.put(k(2), 2, 4, later)
	if _, ok := c.get(k(1), now); !ok { // 1 is now the most recent
		t.Fatal("1 missing")
	}
	c.put(k(3), 3, 4, later) // over budget: 2, the least recent, goes
	if _, ok := c.get(k(2), now); ok {
		t.Error("2 not evicted")
	}
	if v, ok := c.get(k(1), now); !ok || v != 1 {
		t.Error("1 evicted")
	}
	c.put(k(4), 4, 11, later) // larger than the cache: not kept
	if _, ok := c.get(k(4), now); ok {
		t.Error("oversized entry kept")
	}
	c.put(k(5), 5, 1, now.Add(time.Second))
	if _, ok := c.get(k(5), now.Add(2*time.Second)); ok {
		t.Error("expired entry returned")
	}
	if c.len() != 2 || c.used != 8 {
		t.Errorf("len %d used %d", c.len(), c.used)
	}
}

func TestAnswerCacheBounded(t *testing.T) {
	r, err := revocationlab.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	root, err := revocationlab.NewRoot(r, "Root")
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("Intermediate")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{CacheEntries: 3})
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		leaf, err := inter.ServerCert(revocationlab.CertOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.VerifyChain(context.Background(), leaf.Chain, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.answers.len(); n > 3 {
		t.Errorf("%d cached answers with CacheEntries 3", n)
	}
}

func TestExpiry(t *testing.T) {
	now := time.Now()
	if got := expiry(now, now, now.Add(10*24*time.Hour)); !got.Equal(now.Add(maxCacheTTL)) {
		t.Errorf("a 10-day nextUpdate is kept until %v, want capped at a day", got)
	}
	if got := expiry(now, now.Add(-time.Minute), time.Time{}); !got.Equal(now.Add(-time.Minute).Add(noNextUpdateTTL)) {
		t.Errorf("no nextUpdate: %v", got)
	}
}
