package activity

import (
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
)

// eventFromCEF rebuilds an Event from a CEF extension.
func eventFromCEF(m *CEFMessage) (Event, error) {
	x := m.Ext
	var ev Event
	var err error
	if ev.ID, err = uuid.Parse(x["externalId"]); err != nil {
		return ev, err
	}
	ints := map[string]*int64{"cn1": &ev.Seq, "in": &ev.BytesUp, "out": &ev.BytesDown, "fsize": &ev.FileSize}
	for k, dst := range ints {
		if v, ok := x[k]; ok {
			if *dst, err = strconv.ParseInt(v, 10, 64); err != nil {
				return ev, err
			}
		}
	}
	if v, ok := x["rt"]; ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return ev, err
		}
		ev.Time = time.UnixMilli(ms).UTC()
	}
	src := x["src"]
	if src == "" {
		src = x["c6a2"]
	}
	if src != "" {
		if ev.SourceIP, err = netip.ParseAddr(src); err != nil {
			return ev, err
		}
	}
	labels := map[string]string{"cs1": cefLabelPolicies, "cs2": cefLabelApp, "cs3": cefLabelActivity, "cs4": cefLabelSession,
		"cs5": cefLabelJA4, "cs6": cefLabelGroups, "flexString1": cefLabelMode, "flexString2": cefLabelDeviceTags}
	for k, label := range labels {
		if _, ok := x[k]; ok && x[k+"Label"] != label {
			return ev, fmt.Errorf("%sLabel = %q, want %q", k, x[k+"Label"], label)
		}
	}
	ev.User, ev.ClientApp, ev.Host, ev.Method, ev.Path = x["suser"], x["requestClientApplication"], x["dhost"], x["requestMethod"], x["request"]
	ev.Action, ev.Reason, ev.FileName, ev.FileSHA256 = x["act"], x["reason"], x["fname"], x["fileHash"]
	ev.Policies, ev.App, ev.Activity, ev.SessionID = SplitList(x["cs1"]), x["cs2"], x["cs3"], x["cs4"]
	ev.JA4, ev.Groups, ev.Mode, ev.DeviceTags = x["cs5"], SplitList(x["cs6"]), Mode(x["flexString1"]), SplitList(x["flexString2"])
	return ev, nil
}

func cefRoundTrip(t *testing.T, ev Event) *CEFMessage {
	t.Helper()
	raw := FormatCEF(&ev)
	m, err := ParseCEF(string(raw))
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	got, err := eventFromCEF(m)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	if want := normalized(ev, time.Millisecond); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip of %q\n got %+v\nwant %+v", raw, got, want)
	}
	return m
}

func TestCEFRoundTripHostileValues(t *testing.T) {
	ev := hostileEvent()
	ev.Activity = "down|load\\"
	m := cefRoundTrip(t, ev)
	if m.Vendor != "Portcullis" || m.SignatureID != "block" || m.Name != "down|load\\ block" || m.Severity != "7" {
		t.Fatalf("header %+v", m)
	}
	cefRoundTrip(t, sampleEvent(3))
	cefRoundTrip(t, Event{})
}

func TestCEFEscaping(t *testing.T) {
	ev := Event{ID: uuid.Nil, Action: "a|b", Path: "/x=1\\\n y", SourceIP: netip.MustParseAddr("198.18.0.1")}
	got := string(FormatCEF(&ev))
	want := `CEF:0|Portcullis|Portcullis|1|a\|b|access a\|b|3|externalId=00000000-0000-0000-0000-000000000000 ` +
		`src=198.18.0.1 request=/x\=1\\\n y act=a|b in=0 out=0`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// As the MSG of an RFC 5424 message: no SD, no BOM, payload intact.
	m, err := ParseRFC5424(RFC5424{Host: "h", App: "a"}.FormatCEF(&ev))
	if err != nil || m.Msg != want || len(m.SD) != 0 {
		t.Fatalf("%+v, %v", m, err)
	}
}

func TestParseCEFRejects(t *testing.T) {
	for _, in := range []string{"", "LEEF:1|a", "CEF:0|a|b|c|d|e|f", "CEF:0|a|b|c|d|e|f|x", "CEF:0|a|b|c|d|e|f|a=b=c", "CEF:0|a|b|c|d|e|f|=x", "CEF:0|a|b|c|d|e|f|k|x=y"} {
		if m, err := ParseCEF(in); err == nil {
			t.Errorf("%q: parsed as %+v, want error", in, m)
		}
	}
	m, err := ParseCEF(`CEF:0|a\|b|c|d|e|f|g|k=v w  x=\=`)
	if err != nil || m.Vendor != "a|b" || m.Ext["k"] != "v w " || m.Ext["x"] != "=" || m.Name != "f" || m.Severity != "g" {
		t.Fatalf("%+v, %v", m, err)
	}
}

func FuzzCEFRoundTrip(f *testing.F) {
	f.Add("ann", "/x", "p1", int64(1))
	f.Add(`a=b\`, "x y=z|w\r\n", "é日本\xff ", int64(-5))
	f.Add("", "", "", int64(0))
	f.Fuzz(func(t *testing.T, a, b, c string, n int64) {
		cefRoundTrip(t, fuzzEvent(a, b, c, n))
	})
}

func FuzzCEFParse(f *testing.F) {
	ev := hostileEvent()
	f.Add(string(FormatCEF(&ev)))
	f.Add(`CEF:0|a|b|c|d|e|f|k=\`)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseCEF(s) // must not panic
	})
}
