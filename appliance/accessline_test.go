package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/proxy"
)

// sampleLine is a request's access-log line as proxy.accessLine makes it.
func sampleLine(path string) *proxy.RequestLine {
	return &proxy.RequestLine{
		ID: "1f-2a", Mode: "transparent", Client: "198.18.1.2:41234", Dest: "198.18.2.2:443",
		SNI: "origin.lab", Host: "origin.lab", Method: "GET", Path: path, Proto: "HTTP/1.1",
		Status: 200, BytesOut: 120, Decision: "allow", JA4: "t13d1516h2_8daaf6152771_02713d6af862",
		ClientApp: "browser", ClientWhy: "ua", DurationUS: 431,
	}
}

// requestLine logs the access-log line of a request through l as the
// proxy does when l's handler takes no request lines directly.
func requestLine(l *slog.Logger, path string) {
	l.LogAttrs(context.Background(), slog.LevelInfo, proxy.RequestLineMessage, sampleLine(path).Attrs()...)
}

var awkwardPaths = []string{"/r/1", "/a\"b\\c\n\t\x01é\u2028<&>", "/bad\xffutf8", ""}

// The request line written directly is the line Handle writes for its
// record, byte for byte, with and without attributes from With, for
// awkward strings and extreme numbers too.
func TestRequestLineAsRecord(t *testing.T) {
	at := time.Date(2026, 12, 2, 17, 4, 5, 123456789, time.UTC)
	lines := []*proxy.RequestLine{{}}
	for _, p := range awkwardPaths {
		lines = append(lines, sampleLine(p))
	}
	odd := sampleLine("/x")
	odd.Status, odd.BytesIn, odd.BytesOut, odd.DurationUS = -1, math.MaxInt64, math.MinInt64, 0
	odd.User, odd.Reason, odd.ClientWhy = "ü\x00ser", "policy \"p\"", "\u2029"
	lines = append(lines, odd)
	for _, with := range [][]slog.Attr{nil, {slog.Uint64("conn", 7), slog.String("k", "v\n")}} {
		for _, l := range lines {
			var direct, viaRecord bytes.Buffer
			hd, hr := slog.Handler(newAccessHandler(&direct)), slog.Handler(newAccessHandler(&viaRecord))
			if with != nil {
				hd, hr = hd.WithAttrs(with), hr.WithAttrs(with)
			}
			if err := hd.(proxy.RequestLineHandler).HandleRequestLine(at, l); err != nil {
				t.Fatal(err)
			}
			r := slog.NewRecord(at, slog.LevelInfo, proxy.RequestLineMessage, 0)
			r.AddAttrs(l.Attrs()...)
			if err := hr.Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			if direct.String() != viaRecord.String() {
				t.Errorf("direct:\n%s\nrecord:\n%s", direct.String(), viaRecord.String())
			}
		}
	}
}

// The hand-written lines say what slog.JSONHandler's said, value for value
// (time included), for awkward strings too.
func TestAccessHandlerMatchesJSONHandler(t *testing.T) {
	for _, path := range awkwardPaths {
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
// through the buffered log: slog.JSONHandler (before), the hand-written
// handler through slog, and the line handed to it directly (what the proxy
// does), measured in the same run; each variant after the first reports
// its ns per line against slog.JSONHandler's.
func BenchmarkAccessLogLine(b *testing.B) {
	var ns [3]float64
	for i, v := range []struct {
		name string
		log  func(h *accessHandler, w io.Writer) func(path string)
	}{
		{"json", func(_ *accessHandler, w io.Writer) func(string) {
			l := slog.New(slog.NewJSONHandler(w, nil))
			return func(p string) { requestLine(l, p) }
		}},
		{"handwritten", func(h *accessHandler, _ io.Writer) func(string) {
			l := slog.New(h)
			return func(p string) { requestLine(l, p) }
		}},
		{"direct", func(h *accessHandler, _ io.Writer) func(string) {
			return func(p string) {
				l := sampleLine(p)
				_ = h.HandleRequestLine(time.Now(), l)
			}
		}},
	} {
		b.Run(v.name, func(b *testing.B) {
			out := newBufferedLog(nopCloser{io.Discard})
			defer out.Close()
			log := v.log(newAccessHandler(out), out)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					log("/r/12345")
				}
			})
			ns[i] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if i > 0 && ns[0] > 0 {
				b.ReportMetric(ns[i]/ns[0], v.name+"/json")
			}
		})
	}
}
