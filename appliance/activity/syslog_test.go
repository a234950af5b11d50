package activity

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// hostileEvent has every kind of character the formats must escape.
func hostileEvent() Event {
	ev := sampleEvent(7)
	ev.ID = uuid.MustParse("0190f2b4-7c1e-7abc-8def-0123456789ab")
	ev.Seq = 42
	ev.Time = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	ev.User = `ann "the admin" \ o'brien ] [x] = | é 日本`
	ev.Path = "/a b/c=d|e\\f]g\"h\nline2\r\n"
	ev.Reason = `\`
	ev.Policies = []string{"p=1", `p"2]`, "p,3", `p\4`, "p|5"}
	ev.Groups = []string{"grüppe", "a b"}
	ev.FileName = "résumé\t.pdf"
	ev.SourceIP = netip.MustParseAddr("2001:db8::1")
	ev.Action = "block"
	return ev
}

// normalized is what a format→parse round trip can preserve: text as valid
// UTF-8, lists without empty items, time at the format's precision.
func normalized(ev Event, precision time.Duration) Event {
	s := []*string{&ev.User, &ev.ClientApp, &ev.JA4, &ev.App, &ev.Host, &ev.Method, &ev.Path,
		&ev.Activity, &ev.FileName, &ev.FileSHA256, &ev.Action, &ev.Reason, &ev.SessionID}
	for _, p := range s {
		*p = toUTF8(*p)
	}
	ev.Mode = Mode(toUTF8(string(ev.Mode)))
	list := func(l []string) []string {
		var out []string
		for _, it := range l {
			if it != "" {
				out = append(out, toUTF8(it))
			}
		}
		return out
	}
	ev.Groups, ev.DeviceTags, ev.Policies = list(ev.Groups), list(ev.DeviceTags), list(ev.Policies)
	if !ev.Time.IsZero() {
		ev.Time = ev.Time.Truncate(precision).UTC()
	}
	ev.SourceIP = ev.SourceIP.Unmap()
	return ev
}

// eventFromSD rebuilds an Event from the portcullis SD element.
func eventFromSD(m *SyslogMessage) (Event, error) {
	p := m.SD[SyslogSDID]
	if p == nil {
		return Event{}, fmt.Errorf("no %s element", SyslogSDID)
	}
	var ev Event
	var err error
	if ev.ID, err = uuid.Parse(p["id"]); err != nil {
		return ev, err
	}
	ints := map[string]*int64{"seq": &ev.Seq, "bytesUp": &ev.BytesUp, "bytesDown": &ev.BytesDown, "fileSize": &ev.FileSize}
	for k, dst := range ints {
		if v, ok := p[k]; ok {
			if *dst, err = strconv.ParseInt(v, 10, 64); err != nil {
				return ev, err
			}
		}
	}
	if v := p["src"]; v != "" {
		if ev.SourceIP, err = netip.ParseAddr(v); err != nil {
			return ev, err
		}
	}
	ev.Time = m.Time
	ev.Mode = Mode(p["mode"])
	ev.User, ev.ClientApp, ev.JA4 = p["user"], p["clientApp"], p["ja4"]
	ev.App, ev.Host, ev.Method, ev.Path, ev.Activity = p["app"], p["host"], p["method"], p["path"], p["activity"]
	ev.FileName, ev.FileSHA256 = p["file"], p["sha256"]
	ev.Action, ev.Reason, ev.SessionID = p["action"], p["reason"], p["session"]
	ev.Groups, ev.DeviceTags, ev.Policies = SplitList(p["groups"]), SplitList(p["deviceTags"]), SplitList(p["policies"])
	return ev, nil
}

func syslogRoundTrip(t *testing.T, ev Event) {
	t.Helper()
	raw := FormatRFC5424(&ev, "fw1.example", "portcullis")
	m, err := ParseRFC5424(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	got, err := eventFromSD(m)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	if want := normalized(ev, time.Microsecond); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip of %q\n got %+v\nwant %+v", raw, got, want)
	}
}

func TestSyslogRoundTripHostileValues(t *testing.T) {
	syslogRoundTrip(t, hostileEvent())
	syslogRoundTrip(t, sampleEvent(1))
	syslogRoundTrip(t, Event{}) // everything empty: NILVALUEs, no optional params
}

func TestSyslogHeader(t *testing.T) {
	ev := hostileEvent()
	raw := FormatRFC5424(&ev, "fw1.example", "portcullis")
	want := "<132>1 2026-03-01T12:00:00.123456Z fw1.example portcullis - activity [portcullis@32473 id=\"0190f2b4-"
	if !strings.HasPrefix(string(raw), want) {
		t.Fatalf("got  %q\nwant prefix %q", raw, want)
	}
	if !strings.Contains(string(raw), `policies="p=1,p\"2\],p\\,3,p\\\\4,p|5"`) {
		t.Fatalf("policies not escaped as expected: %q", raw)
	}
	allow := Event{Action: "allow"}
	m, err := ParseRFC5424(RFC5424{Facility: FacilityLocal7, ProcID: "123"}.Format(&allow))
	if err != nil || m.Facility != FacilityLocal7 || m.Severity != severityInfo || m.ProcID != "123" || m.Hostname != "" || m.Timestamp != "" {
		t.Fatalf("allow: %+v, %v", m, err)
	}
	if m.Msg != "- allow - " {
		t.Fatalf("msg %q", m.Msg)
	}

	// Header fields are PRINTUSASCII and length-limited whatever they are given.
	long := strings.Repeat("h", 300)
	m, err = ParseRFC5424(RFC5424{Host: "bad host\n" + long, App: "äpp " + long, ProcID: long}.Format(&allow))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Hostname) != maxHostname || len(m.AppName) != maxAppName || len(m.ProcID) != maxProcID ||
		!strings.HasPrefix(m.Hostname, "bad_host_h") || !strings.HasPrefix(m.AppName, "__pp_h") {
		t.Fatalf("header %q %q %q", m.Hostname, m.AppName, m.ProcID)
	}
}

func TestParseRFC5424Rejects(t *testing.T) {
	for _, in := range []string{
		"", "<", "<192>1 - - - - - -", "<01>1 - - - - - -", "<1>0 - - - - - -",
		"<1>1 - - - - -", "<1>1 - - - - - x", "<1>1 - - - - - [a b=\"c]", "<1>1 - - - - - [a b=\"c\"",
		"<1>1 - - - - - [a b=\"c]\"]", "<1>1 - - - - - [a b=\"\xff\"]", "<1>1 x - - - - -",
		"<1>1 - - - - - [a b=\"c\"]x", "<1>1 - - - - - []", "<1>1 -  - - - -",
	} {
		if m, err := ParseRFC5424([]byte(in)); err == nil {
			t.Errorf("%q: parsed as %+v, want error", in, m)
		}
	}
	m, err := ParseRFC5424([]byte(`<0>1 - - - - - [a b="x\y" c="1"][d] msg`))
	if err != nil || m.SD["a"]["b"] != `x\y` || m.SD["a"]["c"] != "1" || m.SD["d"] == nil || m.Msg != "msg" {
		t.Fatalf("%+v, %v", m, err)
	}
}

func TestSplitList(t *testing.T) {
	for _, l := range [][]string{nil, {"a"}, {"a", "b"}, {",", `\`, `\,`, "x,y"}, {"a\\"}} {
		if got := SplitList(joinList(l)); !slices.Equal(got, l) {
			t.Errorf("%q → %q → %q", l, joinList(l), got)
		}
	}
}

// fuzzEvent puts fuzzed text into every string field (and lists), so the
// round trips see hostile input everywhere.
func fuzzEvent(a, b, c string, n int64) Event {
	return Event{
		ID: uuid.MustParse("0190f2b4-7c1e-7abc-8def-0123456789ab"), Seq: n & 0xffff,
		Time: time.Unix(0, n).UTC(), Mode: Mode(c), User: a, Groups: []string{a, b},
		SourceIP: netip.AddrFrom4([4]byte{10, 0, byte(n), 1}), DeviceTags: []string{c}, ClientApp: b, JA4: c,
		App: a, Host: b, Method: c, Path: a + b, Activity: b, FileName: c, FileSize: n, FileSHA256: a,
		Policies: []string{b, c, a}, Action: a, Reason: b, BytesUp: n, BytesDown: -n, SessionID: c,
	}
}

func FuzzSyslogRoundTrip(f *testing.F) {
	f.Add("ann", "/x", "p1", int64(1))
	f.Add(`"]\`, "a=b|c\nd", "é日本\xff", int64(-5))
	f.Add("", "", "", int64(0))
	f.Fuzz(func(t *testing.T, a, b, c string, n int64) {
		syslogRoundTrip(t, fuzzEvent(a, b, c, n))
	})
}

func FuzzSyslogParse(f *testing.F) {
	ev := hostileEvent()
	f.Add(FormatRFC5424(&ev, "h", "a"))
	f.Add([]byte(`<0>1 - - - - - [a b="x\"\]\\"]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseRFC5424(b) // must not panic
	})
}
