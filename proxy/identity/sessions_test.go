package identity

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func roundTrip(t *testing.T, set, get *Sessions, setHost, getHost string, id Identity) (Identity, bool) {
	t.Helper()
	w := httptest.NewRecorder()
	if err := set.Set(w, setHost, id); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "https://"+getHost+"/", nil)
	for _, c := range w.Result().Cookies() {
		r.AddCookie(c)
	}
	return get.Get(r, getHost)
}

func TestSessions(t *testing.T) {
	s, err := NewSessions([][]byte{secret(1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	alice := Identity{User: "alice", Groups: []string{"staff"}, Source: "saml"}
	got, ok := roundTrip(t, s, s, "app.gw.test", "app.gw.test", alice)
	if !ok || got.User != "alice" || got.Groups[0] != "staff" {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	w := httptest.NewRecorder()
	_ = s.Set(w, "app.gw.test", alice)
	c := w.Result().Cookies()[0]
	if c.Name != "__Host-portcullis" || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" || strings.Contains(c.Value, "alice") {
		t.Fatalf("cookie %+v", c)
	}
	if _, ok := roundTrip(t, s, s, "app.gw.test", "other.gw.test", alice); ok {
		t.Error("a cookie of one app opened on another")
	}
	// Every flipped byte is refused.
	for i := range len(c.Value) {
		v := []byte(c.Value)
		v[i] ^= 0x01
		r := httptest.NewRequest("GET", "https://app.gw.test/", nil)
		r.AddCookie(&http.Cookie{Name: c.Name, Value: string(v)})
		if _, ok := s.Get(r, "app.gw.test"); ok {
			t.Fatalf("tampered cookie (byte %d) accepted", i)
		}
	}
	// Rotation: the old secret still opens, the new one seals.
	rotated, _ := NewSessions([][]byte{secret(2), secret(1)}, time.Hour)
	if _, ok := roundTrip(t, s, rotated, "app.gw.test", "app.gw.test", alice); !ok {
		t.Error("rotation: a cookie sealed with the old secret did not open")
	}
	if _, ok := roundTrip(t, rotated, s, "app.gw.test", "app.gw.test", alice); ok {
		t.Error("a cookie sealed with an unknown secret opened")
	}
	// Expiry.
	past, _ := NewSessions([][]byte{secret(1)}, time.Hour)
	past.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	if _, ok := roundTrip(t, past, s, "app.gw.test", "app.gw.test", alice); ok {
		t.Error("an expired session opened")
	}
	if err := s.Set(httptest.NewRecorder(), "app.gw.test", Identity{User: "alice", Expires: time.Now().Add(-time.Minute)}); err == nil {
		t.Error("an already expired identity was sealed")
	}
	// The host is compared case-insensitively and without a port.
	if _, ok := roundTrip(t, s, s, "App.GW.test:443", "app.gw.test", alice); !ok {
		t.Error("the same host written differently did not open")
	}
	if _, err := NewSessions([][]byte{[]byte("short")}, time.Hour); err == nil {
		t.Error("a short secret was accepted")
	}
	big := Identity{User: "alice", Groups: []string{strings.Repeat("g", 5000)}}
	if err := s.Set(httptest.NewRecorder(), "app.gw.test", big); err == nil {
		t.Error("an oversized identity was sealed")
	}
}

// TestSessionsRemembered: a cookie Get opened is recognised again without
// being opened (the same identity, its slices without spare capacity), and
// remembering it accepts nothing more than opening would: not on another
// host, not once it expired, not a tampered copy; the set of remembered
// cookies stays bounded.
func TestSessionsRemembered(t *testing.T) {
	s, _ := NewSessions([][]byte{secret(1)}, time.Hour)
	now := time.Now()
	s.now = func() time.Time { return now }
	alice := Identity{User: "alice", Groups: []string{"staff", "finance"}, Attrs: map[string][]string{"email": {"a@x"}}, Source: "oidc"}
	w := httptest.NewRecorder()
	if err := s.Set(w, "app.gw.test", alice); err != nil {
		t.Fatal(err)
	}
	c := w.Result().Cookies()[0]
	get := func(host, value string) (Identity, bool) {
		r := httptest.NewRequest("GET", "https://"+host+"/", nil)
		r.AddCookie(&http.Cookie{Name: CookieName, Value: value})
		return s.Get(r, host)
	}
	first, ok := get("app.gw.test", c.Value)
	if !ok || len(s.opened.m) != 1 {
		t.Fatalf("first Get: %v, %d remembered", ok, len(s.opened.m))
	}
	// Without the keys, only what was remembered can answer.
	aeads := s.aeads
	s.aeads = nil
	again, ok := get("App.GW.test.", c.Value)
	if !ok || again.User != "alice" || !slices.Equal(again.Groups, first.Groups) || again.Attrs["email"][0] != "a@x" || !again.Expires.Equal(first.Expires) {
		t.Fatalf("remembered Get: %+v %v", again, ok)
	}
	if cap(again.Groups) != len(again.Groups) {
		t.Error("a remembered identity's groups have spare capacity: an append would write into the shared array")
	}
	if _, ok := get("other.gw.test", c.Value); ok {
		t.Error("a cookie remembered for one host opened on another")
	}
	v := []byte(c.Value)
	v[len(v)/2] ^= 1
	s.aeads = aeads
	if _, ok := get("app.gw.test", string(v)); ok {
		t.Error("a tampered copy of a remembered cookie was accepted")
	}
	now = now.Add(2 * time.Hour)
	if _, ok := get("app.gw.test", c.Value); ok {
		t.Error("a remembered session was accepted after it expired")
	}
	now = now.Add(-2 * time.Hour)
	for i := range maxOpened + 10 {
		w := httptest.NewRecorder()
		if err := s.Set(w, "app.gw.test", Identity{User: "u" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
		if id, ok := get("app.gw.test", w.Result().Cookies()[0].Value); !ok || id.User != "u"+strconv.Itoa(i) {
			t.Fatalf("session %d: %+v %v", i, id, ok)
		}
	}
	if n := len(s.opened.m); n > maxOpened || n == 0 {
		t.Errorf("%d sessions remembered (at most %d)", n, maxOpened)
	}
}

func TestCSRF(t *testing.T) {
	c := NewCSRF(secret(3))
	tok := c.Token("app.gw.test", "continue")
	if !c.Valid("app.gw.test", "continue", tok) {
		t.Fatal("fresh token refused")
	}
	for _, bad := range []struct{ host, purpose, tok string }{
		{"other.gw.test", "continue", tok}, {"app.gw.test", "step-up", tok}, {"app.gw.test", "continue", tok[:len(tok)-2] + "AA"}, {"app.gw.test", "continue", ""},
	} {
		if c.Valid(bad.host, bad.purpose, bad.tok) {
			t.Errorf("accepted %+v", bad)
		}
	}
	c.now = func() time.Time { return time.Now().Add(time.Hour) }
	if c.Valid("app.gw.test", "continue", tok) {
		t.Error("expired token accepted")
	}
}

func FuzzSessionOpen(f *testing.F) {
	s, _ := NewSessions([][]byte{secret(1)}, time.Hour)
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "https://app.gw.test/", nil)
		r.Header.Set("Cookie", CookieName+"="+v)
		if id, ok := s.Get(r, "app.gw.test"); ok {
			t.Fatalf("random cookie %q opened as %+v", v, id)
		}
	})
}

func BenchmarkSessions(b *testing.B) {
	s, _ := NewSessions([][]byte{secret(1)}, time.Hour)
	id := Identity{User: "alice@lab.example", Groups: []string{"staff", "finance"}, Source: "saml", Issuer: "https://idp.lab/metadata"}
	w := httptest.NewRecorder()
	_ = s.Set(w, "app.gw.test", id)
	c := w.Result().Cookies()[0]
	b.Run("Set", func(b *testing.B) {
		for b.Loop() {
			_ = s.Set(httptest.NewRecorder(), "app.gw.test", id)
		}
	})
	b.Run("Get", func(b *testing.B) {
		r := httptest.NewRequest("GET", "https://app.gw.test/", nil)
		r.AddCookie(c)
		for b.Loop() {
			if _, ok := s.Get(r, "app.gw.test"); !ok {
				b.Fatal("no session")
			}
		}
	})
	// Baseline: HMAC-SHA256 over the same cookie value, the cheapest
	// integrity check a signed (not encrypted) cookie could do.
	b.Run("BaselineHMAC", func(b *testing.B) {
		m := hmac.New(sha256.New, secret(1))
		for b.Loop() {
			m.Reset()
			m.Write([]byte(c.Value))
			_ = m.Sum(nil)
		}
	})
}

// TestSessionCookiesAsNetHTTP: the values Get tries are exactly those
// Request.CookiesNamed gives, in order, for Cookie lines net/http parses
// in its own ways (spaces around names and values, quotes, bytes a value
// may not hold, empty parts, several lines, names that only contain the
// cookie's, more cookies than net/http accepts).
func TestSessionCookiesAsNetHTTP(t *testing.T) {
	many := strings.Repeat("a=1; ", 3000) + CookieName + "=late"
	for _, lines := range [][]string{
		{CookieName + "=v1"},
		{"a=b; " + CookieName + "=v1; c=d", CookieName + "=v2"},
		{"  " + CookieName + " = v1 ;" + CookieName + "= v2; " + CookieName + "=v3 "},
		{CookieName + `="quoted"; ` + CookieName + `="half; ` + CookieName + `=""`},
		{CookieName + "=bad\\value; " + CookieName + "=bad\"q; " + CookieName + "=tab\tin; " + CookieName + "=ok"},
		{";;" + CookieName + ";" + CookieName + "=; x" + CookieName + "=no; " + CookieName + "x=no; " + strings.ToUpper(CookieName) + "=no"},
		{"\t" + CookieName + "=\t v \t"},
		{CookieName + "=a=b=c; " + CookieName + "=caf\u00e9"},
		{"", " ", CookieName + "=last"},
		{many},
		{strings.Repeat("a=1;", 1500), strings.Repeat("b=2;", 1500) + CookieName + "=over"},
	} {
		r := http.Request{Header: http.Header{"Cookie": lines}}
		var want []string
		for _, c := range r.CookiesNamed(CookieName) {
			want = append(want, c.Value)
		}
		var got []string
		if sessionCookies(lines, func(v string) bool { got = append(got, v); return false }) {
			t.Errorf("%q: reported a cookie taken", lines)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%.80q: tried %q, net/http gives %q", lines, got, want)
		}
		// The first one taken stops the scan.
		n := 0
		taken := sessionCookies(lines, func(string) bool { n++; return true })
		if taken != (len(want) > 0) || n != min(len(want), 1) {
			t.Errorf("%.80q: taking the first: %v after %d tries", lines, taken, n)
		}
	}
}

// TestSessionsGetAllocs: a request without the session cookie costs Get no
// allocation, and one with a remembered cookie among others costs it none
// either (net/http's cookie parse allocated a slice and a Cookie per match).
func TestSessionsGetAllocs(t *testing.T) {
	s, err := NewSessions([][]byte{secret(1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	if err := s.Set(w, "app.gw.test", Identity{User: "alice", Groups: []string{"staff"}}); err != nil {
		t.Fatal(err)
	}
	signedIn := httptest.NewRequest("GET", "https://app.gw.test/", nil)
	signedIn.Header.Set("Cookie", "theme=dark; "+w.Result().Cookies()[0].String()+"; lang=en")
	if id, ok := s.Get(signedIn, "app.gw.test"); !ok || id.User != "alice" {
		t.Fatalf("signed-in request: %+v %v", id, ok)
	}
	anonymous := httptest.NewRequest("GET", "https://app.gw.test/", nil)
	anonymous.Header.Set("Cookie", "theme=dark; lang=en")
	for name, r := range map[string]*http.Request{"signed in": signedIn, "anonymous": anonymous} {
		if n := testing.AllocsPerRun(100, func() { s.Get(r, "app.gw.test") }); n != 0 {
			t.Errorf("%s: %v allocations per Get", name, n)
		}
	}
}
