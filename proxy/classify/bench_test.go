package classify

import "testing"

// benchInputs are the request-path cases: a browser by whole JA4, a spoofed
// tool, a pattern match, an unknown fingerprint.
var benchInputs = []Input{
	{JA4: ja4Chromium, ALPN: h2h1, UserAgent: uaChrome156},
	{JA4: ja4Curl, ALPN: h2h1, UserAgent: uaChrome156},
	{JA4: "t13d1518h2_8daaf6152771_0123456789ab", ALPN: h2h1, UserAgent: uaSlack},
	{JA4: ja4Unknown, ALPN: h2h1, UserAgent: uaFirefoxW7},
	{JA4: ja4Firefox, ALPN: h2h1},
}

// BenchmarkClassify measures one classification per request. The baseline
// is the one allocation every result costs (its Why string), measured in
// the same run: Classify's budget is 1 µs and at most that allocation.
func BenchmarkClassify(b *testing.B) {
	c := Default()
	b.Run("baseline-why-alloc", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 160)
		var s string
		for b.Loop() {
			s = string(buf)
		}
		_ = s
	})
	names := []string{"chromium-exact", "curl-spoofing-chrome", "electron-pattern", "unknown-ja4", "connection-level"}
	for i, in := range benchInputs {
		b.Run(names[i], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.Classify(in)
			}
		})
	}
	b.Run("parallel-mix", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				_ = c.Classify(benchInputs[i%len(benchInputs)])
				i++
			}
		})
	})
}

func BenchmarkParseUserAgent(b *testing.B) {
	for _, c := range []struct{ name, ua string }{
		{"chrome", uaChrome156},
		{"electron", uaSlack},
		{"curl", "curl/7.88.1"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = ParseUserAgent(c.ua)
			}
		})
	}
}
