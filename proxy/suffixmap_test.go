package proxy

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/idna"
)

func labMapper(t testing.TB) *SuffixMapper {
	onboarded := map[string]bool{"app.example.com": true, "wiki.lab": true, "xn--bcher-kva.example": true}
	m, err := NewSuffixMapper("gw.corp.example", func(h string) bool { return onboarded[h] })
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSuffixMapping(t *testing.T) {
	m := labMapper(t)
	for in, want := range map[string]string{
		"app.example.com.gw.corp.example":       "app.example.com",
		"APP.Example.COM.gw.CORP.example.":      "app.example.com",
		"app.example.com.gw.corp.example:8443":  "app.example.com",
		"wiki.lab.gw.corp.example":              "wiki.lab",
		"bücher.example.gw.corp.example":        "xn--bcher-kva.example",
		"xn--bcher-kva.example.gw.corp.example": "xn--bcher-kva.example",
	} {
		got, err := m.ToOrigin(in)
		if err != nil || got != want {
			t.Errorf("ToOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
		if back, ok := m.ToSuffixed(got); !ok || back != got+".gw.corp.example" {
			t.Errorf("ToSuffixed(%q) = %q, %v", got, back, ok)
		}
	}
}

// The SSRF corpus: every one of these is refused, with the reason, before
// anything could be dialled.
func TestSuffixMappingRefusesSSRFCorpus(t *testing.T) {
	m := labMapper(t)
	for in, want := range map[string]error{
		"127.0.0.1.gw.corp.example":                ErrIPLiteral,
		"169.254.169.254.gw.corp.example":          ErrIPLiteral,
		"2130706433.gw.corp.example":               ErrIPLiteral,
		"0x7f.1.gw.corp.example":                   ErrIPLiteral,
		"127.1.gw.corp.example":                    ErrIPLiteral,
		"127.0.0.1":                                ErrIPLiteral,
		"[::1]:443":                                ErrIPLiteral,
		"evil.com.app.example.com.gw.corp.example": ErrNotOnboarded,
		"app.example.com.evil.com.gw.corp.example": ErrNotOnboarded,
		"localhost.gw.corp.example":                ErrNotOnboarded,
		"metadata.google.internal.gw.corp.example": ErrNotOnboarded,
		"app.example.com":                          ErrNotSuffixed,
		"app.example.com.gw.corp.example.evil.com": ErrNotSuffixed,
		"gw.corp.example":                          ErrNotSuffixed,
		".gw.corp.example":                         ErrBadHost,
		"app..example.com.gw.corp.example":         ErrBadHost,
		"app.example.com.gw.corp.example:0":        ErrBadHost,
		"app.example.com.gw.corp.example:99999":    ErrBadHost,
		"app.example.com.gw.corp.example:80:80":    ErrBadHost,
		"app_example.com.gw.corp.example":          ErrBadHost,
		"app.example.com%2e.gw.corp.example":       ErrBadHost,
		"app.example.com\x00.gw.corp.example":      ErrBadHost,
		"":                                         ErrBadHost,
	} {
		_, err := m.ToOrigin(in)
		if !errors.Is(err, want) {
			t.Errorf("ToOrigin(%q) error = %v, want %v", in, err, want)
		}
	}
}

func TestForbiddenOriginAddr(t *testing.T) {
	for a, want := range map[string]bool{
		"127.0.0.1": true, "10.1.2.3": true, "172.16.0.1": true, "192.168.1.1": true, "169.254.169.254": true,
		"100.64.0.1": true, "0.0.0.0": true, "::1": true, "fe80::1": true, "fd00:ec2::254": true, "::ffff:10.0.0.1": true,
		"198.18.2.2": false, "8.8.8.8": false, "2001:4860::8888": false,
	} {
		if got := ForbiddenOriginAddr(netip.MustParseAddr(a)); got != want {
			t.Errorf("ForbiddenOriginAddr(%s) = %v, want %v", a, got, want)
		}
	}
}

// FuzzSuffixMapping: whatever the Host header, a successful mapping yields
// an onboarded host that maps back to the same (normalised) suffixed name.
func FuzzSuffixMapping(f *testing.F) {
	for _, s := range []string{"app.example.com.gw.corp.example", "127.0.0.1.gw.corp.example", "A.B.gw.corp.example.:1", "bücher.example.gw.corp.example", "[::1]"} {
		f.Add(s)
	}
	m := labMapper(f)
	f.Fuzz(func(t *testing.T, host string) {
		origin, err := m.ToOrigin(host)
		if err != nil {
			return
		}
		if !m.onboarded(origin) {
			t.Fatalf("ToOrigin(%q) = %q, not onboarded", host, origin)
		}
		back, ok := m.ToSuffixed(origin)
		if !ok || !strings.HasSuffix(back, ".gw.corp.example") {
			t.Fatalf("ToSuffixed(%q) = %q, %v", origin, back, ok)
		}
		again, err := m.ToOrigin(back)
		if err != nil || again != origin {
			t.Fatalf("round trip %q -> %q -> %q -> %q, %v", host, origin, back, again, err)
		}
	})
}

// TestNormalizeNameFastPath: with the ASCII fast path, normalizeName
// accepts and returns exactly what it did with IDNA for every name, for
// names built from the characters and label shapes that matter (hyphens in
// every place, "xn--", upper case, empty labels, non-ASCII).
func TestNormalizeNameFastPath(t *testing.T) {
	parts := []string{"a", "A", "0", "-", "--", "ab", "xn--", "Xn--", "xn--bcher-kva", "a-b", "ab--c", "abc--d", "é", ".", "..", "_"}
	viaIDNA := func(h string) (string, bool) {
		h = strings.TrimSuffix(h, ".")
		a, err := idna.Lookup.ToASCII(h)
		if err != nil {
			return "", false
		}
		a = strings.ToLower(a)
		if a == "" || len(a) > 253 {
			return "", false
		}
		for _, label := range strings.Split(a, ".") {
			if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
				return "", false
			}
			for i := 0; i < len(label); i++ {
				if c := label[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
					return "", false
				}
			}
		}
		return a, true
	}
	n := 0
	var build func(prefix string, depth int)
	build = func(prefix string, depth int) {
		if depth == 0 {
			return
		}
		for _, p := range parts {
			h := prefix + p
			n++
			want, wok := viaIDNA(h)
			got, err := normalizeName(h)
			if (err == nil) != wok || got != want {
				t.Fatalf("%q: normalizeName %q (%v), with IDNA %q (ok %v)", h, got, err, want, wok)
			}
			build(h, depth-1)
		}
	}
	build("", 4)
	if n < 10000 {
		t.Fatalf("only %d names tried", n)
	}
}

// TestMappingShortcutsAgreeWithParsing: looksNumeric and the IP-literal
// test of candidate, which skip strconv and net.ParseIP for names, decide
// every host as the plain parses do (numbers too big for 64 bits, hex, "0x"
// alone, IPv4 and IPv6 literals, names that start or end like them).
func TestMappingShortcutsAgreeWithParsing(t *testing.T) {
	numericByParse := func(name string) bool {
		last := name[strings.LastIndexByte(name, '.')+1:]
		if strings.HasPrefix(last, "0x") {
			_, err := strconv.ParseUint(last[2:]+"0", 16, 64)
			return err == nil
		}
		_, err := strconv.ParseUint(last, 10, 64)
		return err == nil
	}
	hosts := []string{"", "0", "1", "127", "a.1", "a.01", "a.0x", "a.0x7f", "a.0xfg", "a.0X7f", "0x7f.1", "127.1", "a.b",
		"a.18446744073709551615", "a.18446744073709551616", "a.0xffffffffffffffff", "a.0xfffffffffffffffff",
		"2130706433", "a.1a", "a.a1", "1.2.3.4", "1.2.3", "::1", "fe80::1", "::ffff:1.2.3.4", "1.2.3.4.5", "app.test", "1e5", "a.-1", "a.+1", "a.1_0"}
	for _, h := range hosts {
		if got, want := looksNumeric(h), numericByParse(h); got != want {
			t.Errorf("looksNumeric(%q) = %v, parsing says %v", h, got, want)
		}
		if got, want := mayBeIPLiteral(h) && net.ParseIP(h) != nil, net.ParseIP(h) != nil; got != want {
			t.Errorf("IP literal %q: %v, net.ParseIP says %v", h, got, want)
		}
	}
}
