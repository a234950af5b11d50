package scan

import (
	"testing"
	"time"
)

// A verdict from a scan the caller ran itself (a file scanned as it
// streamed) answers the next ScanDigest of the same bytes without a scan;
// a clean one does not overwrite an infected one; ttl and the LRU bound
// apply as for scanned verdicts.
func TestCacheRemember(t *testing.T) {
	stub := &stubScanner{verdict: Verdict{Scanner: "stub"}}
	c := NewCache(stub, 2, time.Minute)
	if c.Scanner() != Scanner(stub) {
		t.Fatal("Scanner is not the scanner behind the cache")
	}
	c.Remember(digestOf("a"), Verdict{Infected: true, Signature: "X", Scanner: "stub", Cached: true})
	v, err := c.ScanDigest(background, digestOf("a"), iotestErrReader{}, 1, "f")
	if err != nil || !v.Cached || !v.Infected || v.Signature != "X" || stub.calls.Load() != 0 {
		t.Fatalf("remembered: %+v, %v, %d scans", v, err, stub.calls.Load())
	}
	c.Remember(digestOf("a"), Verdict{Scanner: "stub"})
	if v, _ := scanDigest(c, "a"); !v.Infected {
		t.Fatal("a clean verdict replaced an infected one")
	}
	c.Remember(digestOf("b"), Verdict{Scanner: "stub"})
	c.Remember(digestOf("c"), Verdict{Scanner: "stub"})
	if c.Len() != 2 {
		t.Fatalf("%d entries kept, bound 2", c.Len())
	}
	if v, _ := scanDigest(c, "a"); v.Cached || stub.calls.Load() != 1 {
		t.Fatalf("the oldest was not dropped: %+v", v)
	}

	off := NewCache(stub, 0, 0)
	off.Remember(digestOf("d"), Verdict{Scanner: "stub"})
	if off.Len() != 0 {
		t.Fatal("a cache of no entries kept a verdict")
	}
}
