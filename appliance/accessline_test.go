package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"
)

// requestLine logs the access-log line of a request as proxy.accessLine
// does: the same 17 attributes, in order.
func requestLine(l *slog.Logger, path string) {
	l.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("id", "1f-2a"), slog.String("mode", "transparent"),
		slog.String("client", "198.18.1.2:41234"), slog.String("dest", "198.18.2.2:443"),
		slog.String("sni", "origin.lab"), slog.String("host", "origin.lab"), slog.String("user", ""),
		slog.String("method", "GET"), slog.String("path", path), slog.String("proto", "HTTP/1.1"),
		slog.Int("status", 200), slog.Int64("bytes_in", 0), slog.Int64("bytes_out", 120),
		slog.String("decision", "allow"), slog.String("reason", ""),
		slog.String("ja4", "t13d1516h2_8daaf6152771_02713d6af862"), slog.Int64("duration_us", 431),
	)
}

// The hand-written lines say what slog.JSONHandler's said, value for value
// (time included), for awkward strings too.
func TestAccessHandlerMatchesJSONHandler(t *testing.T) {
	for _, path := range []string{"/r/1", "/a\"b\\c\n\t\x01é\u2028<&>", "/bad\xffutf8", ""} {
		var want, got bytes.Buffer
		requestLine(slog.New(slog.NewJSONHandler(&want, nil)), path)
		requestLine(slog.New(newAccessHandler(&got)), path)
		var w, g map[string]any
		if err := json.Unmarshal(want.Bytes(), &w); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(got.Bytes(), &g); err != nil {
			t.Fatalf("%q: %v", got.String(), err)
		}
		wt, _ := time.Parse(time.RFC3339Nano, w["time"].(string))
		gt, _ := time.Parse(time.RFC3339Nano, g["time"].(string))
		if d := gt.Sub(wt); d < 0 || d > time.Second {
			t.Errorf("time %v vs %v", g["time"], w["time"])
		}
		delete(w, "time")
		delete(g, "time")
		if !reflect.DeepEqual(w, g) {
			t.Errorf("path %q:\n got %s\nwant %s", path, got.String(), want.String())
		}
	}
	// With, groups and other kinds render as JSON too.
	var buf bytes.Buffer
	l := slog.New(newAccessHandler(&buf)).With("conn", uint64(7))
	l.Info("connection", "d", time.Second, "ok", true, "f", 1.5, "g", slog.GroupValue(slog.Int("a", 1), slog.String("b", "x")), "any", []int{1, 2})
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil || m["conn"] != 7.0 || m["d"] != 1e9 || m["ok"] != true ||
		m["g"].(map[string]any)["b"] != "x" || len(m["any"].([]any)) != 2 {
		t.Errorf("%s: %v", buf.String(), err)
	}
}

// BenchmarkAccessLogLine is the cost of one request's access-log line
// through the buffered log, slog.JSONHandler (before) against the
// hand-written handler (after), measured in the same run; handwritten/json
// is the ratio of their ns per line.
func BenchmarkAccessLogLine(b *testing.B) {
	var ns [2]float64
	for i, h := range []struct {
		name string
		mk   func(io.Writer) slog.Handler
	}{
		{"json", func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) }},
		{"handwritten", func(w io.Writer) slog.Handler { return newAccessHandler(w) }},
	} {
		b.Run(h.name, func(b *testing.B) {
			out := newBufferedLog(nopCloser{io.Discard})
			defer out.Close()
			l := slog.New(h.mk(out))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					requestLine(l, "/r/12345")
				}
			})
			ns[i] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if i == 1 && ns[0] > 0 {
				b.ReportMetric(ns[1]/ns[0], "handwritten/json")
			}
		})
	}
}
