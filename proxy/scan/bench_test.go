package scan

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/scanners"
)

// hitBudget is what a cached verdict may add to a request.
const hitBudget = 50 * time.Microsecond

// BenchmarkCachedVerdict is the cost of a cache hit, in a cache full of
// other verdicts, from one goroutine and from all of them at once; past
// hitBudget per hit it fails.
func BenchmarkCachedVerdict(b *testing.B) {
	const entries = 100_000
	stub := &stubScanner{verdict: Verdict{Scanner: "stub"}}
	c := NewCache(stub, entries, time.Hour)
	digests := make([][32]byte, entries)
	for i := range digests {
		binary.BigEndian.PutUint64(digests[i][:], uint64(i))
		digests[i] = sha256.Sum256(digests[i][:8])
		if _, err := c.ScanDigest(background, digests[i], bytes.NewReader(nil), 0, "f"); err != nil {
			b.Fatal(err)
		}
	}
	check := func(b *testing.B) {
		b.StopTimer()
		if perOp := b.Elapsed() / time.Duration(b.N); perOp > hitBudget {
			b.Fatalf("cached verdict took %v, budget %v", perOp, hitBudget)
		}
		if n := stub.calls.Load(); n != entries {
			b.Fatalf("%d scans for %d files: a hit reached the scanner", n, entries)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			v, err := c.ScanDigest(background, digests[i%entries], nil, 0, "f")
			if err != nil || !v.Cached {
				b.Fatalf("%+v, %v", v, err)
			}
			i++
		}
		check(b)
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				v, err := c.ScanDigest(background, digests[i%entries], nil, 0, "f")
				if err != nil || !v.Cached {
					b.Errorf("%+v, %v", v, err)
					return
				}
				i += 7
			}
		})
		check(b)
	})
}

// BenchmarkClamdScan1MiB scans a clean 1 MiB file with a real clamd and
// reports it against reading and hashing the same bytes in memory,
// measured in the same run: scan/read is how many in-memory reads of the
// file one scan costs.
func BenchmarkClamdScan1MiB(b *testing.B) {
	sock := scanners.StartClamd(b)
	c := newClamd(b, ClamdConfig{Network: "unix", Address: sock, Timeout: 30 * time.Second})
	data := bytes.Repeat([]byte("clean benchmark line, nothing to find here.\n"), (1<<20)/44+1)[:1<<20]
	read := func() {
		h := sha256.New()
		io.Copy(h, bytes.NewReader(data))
		h.Sum(nil)
	}
	scan := func() {
		v, err := c.Scan(background, bytes.NewReader(data), int64(len(data)), "bench.txt")
		if err != nil || v.Infected {
			b.Fatalf("%+v, %v", v, err)
		}
	}
	read()
	scan()
	const baselineN = 200
	start := time.Now()
	for range baselineN {
		read()
	}
	readPerOp := float64(time.Since(start).Nanoseconds()) / baselineN
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		scan()
	}
	b.StopTimer()
	scanPerOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(readPerOp, "read-ns/op")
	b.ReportMetric(scanPerOp/readPerOp, "scan/read")
}
