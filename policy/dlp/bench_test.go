package dlp

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// corpus is 1 MiB of prose-like text: capitalised sentences, numbers,
// dates, prices, acronyms — the things that make a scanner stop and look —
// and no sensitive data. With every > 0, a valid card number is placed
// every `every` bytes.
func corpus(every int) []byte {
	words := strings.Fields(`the quarterly report shows revenue growth across all regions while operating costs
		remained stable and the board approved the budget for next year including new hires in engineering sales
		and support teams our customers in Europe and Asia asked for faster delivery so logistics will expand
		with two warehouses meeting notes were shared on Monday by Sarah and the PDF version is attached NASA ACME API
		HTTP version invoice order shipped`)
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	next := every
	for b.Len() < 1<<20 {
		n := 6 + r.IntN(12)
		for i := 0; i < n; i++ {
			w := words[r.IntN(len(words))]
			if i == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			b.WriteString(w)
			switch r.IntN(30) {
			case 0:
				b.WriteString(" 2024")
			case 1:
				b.WriteString(" $12.50")
			case 2:
				b.WriteString(" 2025-03-14")
			case 3:
				b.WriteString(" +1 555 0100")
			}
			b.WriteByte(' ')
		}
		b.WriteString(". ")
		if every > 0 && b.Len() >= next {
			b.WriteString("card 4111 1111 1111 1111 ")
			next += every
		}
	}
	return []byte(b.String()[:1<<20])
}

// plainScanMBps measures the same-run baseline: one byte-at-a-time loop
// over the buffer doing a table lookup per byte, the cheapest scan that
// looks at every byte the way the detectors must.
func plainScanMBps(buf []byte) float64 {
	var table [256]uint8
	table['@'] = 1
	best := time.Duration(1 << 62)
	for rep := 0; rep < 20; rep++ {
		t0 := time.Now()
		n := 0
		for _, c := range buf {
			n += int(table[c])
		}
		sinkInt += n
		best = min(best, time.Since(t0))
	}
	return float64(len(buf)) / best.Seconds() / 1e6
}

var sinkInt int

func benchInspect(b *testing.B, buf []byte, wantMatches int) {
	s, _ := NewSet(nil)
	in := s.NewInspector()
	in.Write(buf)
	if got := in.Result().Total(); got != wantMatches {
		b.Fatalf("corpus has %d matches, want %d", got, wantMatches)
	}
	base := plainScanMBps(buf)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		in.Reset()
		// 32 KiB writes, as a proxy copying a body would do them.
		for off := 0; off < len(buf); off += 32 << 10 {
			in.Write(buf[off:min(off+32<<10, len(buf))])
		}
		in.Result()
	}
	b.StopTimer()
	mbps := float64(b.N) * float64(len(buf)) / b.Elapsed().Seconds() / 1e6
	b.ReportMetric(base, "baseline-MB/s")
	b.ReportMetric(mbps/base, "x-baseline")
}

func BenchmarkInspectNoMatches(b *testing.B) { benchInspect(b, corpus(0), 0) }

func BenchmarkInspectMatchEvery4KiB(b *testing.B) {
	buf := corpus(4096)
	benchInspect(b, buf, bytes.Count(buf, []byte("card 4111 1111 1111 1111 ")))
}

// BenchmarkInspect16MiB shows memory is independent of body size: B/op
// and allocs/op stay 0 for a 16× larger body.
func BenchmarkInspect16MiB(b *testing.B) {
	one := corpus(4096)
	s, _ := NewSet(nil)
	in := s.NewInspector()
	b.SetBytes(16 << 20)
	b.ReportAllocs()
	for b.Loop() {
		in.Reset()
		for i := 0; i < 16; i++ {
			in.Write(one)
		}
		in.Result()
	}
}

// BenchmarkInspectDigitHeavy: a number every 45 bytes, the worst case
// for the digit anchor (proxy BenchmarkDownloadPolicies' "digits" body).
func BenchmarkInspectDigitHeavy(b *testing.B) {
	benchInspect(b, bytes.Repeat([]byte("lorem ipsum dolor sit amet 12345 consectetur\n"), 1<<20/45), 0)
}
