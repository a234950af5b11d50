package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// Errors of the suffix host mapping, matched by the suffix listener to choose
// its 4xx page. None of them ever leads to an upstream dial.
var (
	ErrNotSuffixed   = errors.New("host is not under the proxy suffix")
	ErrBadHost       = errors.New("malformed host")
	ErrIPLiteral     = errors.New("IP literals are not proxied")
	ErrNotOnboarded  = errors.New("host is not an onboarded app")
	ErrForbiddenAddr = errors.New("origin address is private, loopback, link-local or metadata")
)

// SuffixMapper maps app.example.com.<suffix> back to app.example.com, and
// back again, for the suffix reverse proxy. It only ever yields hosts the
// onboarded predicate accepts (the policy catalog's apps).
type SuffixMapper struct {
	suffix    string // normalised, without a leading dot
	dotSuffix string // "." + suffix
	onboarded func(host string) bool
}

// NewSuffixMapper checks the suffix (a host name of at least two labels).
func NewSuffixMapper(suffix string, onboarded func(host string) bool) (*SuffixMapper, error) {
	s, err := normalizeName(strings.TrimPrefix(suffix, "."))
	if err != nil || !strings.Contains(s, ".") {
		return nil, fmt.Errorf("suffix %q: must be a domain of at least two labels", suffix)
	}
	return &SuffixMapper{suffix: s, dotSuffix: "." + s, onboarded: onboarded}, nil
}

// ToOrigin maps a request's Host (any case, trailing dot, IDNA, optional
// port) to the onboarded origin host it stands for.
func (m *SuffixMapper) ToOrigin(hostport string) (string, error) {
	origin, err := m.candidate(hostport)
	if err != nil {
		return "", err
	}
	if !m.onboarded(origin) {
		return "", fmt.Errorf("%w: %s", ErrNotOnboarded, origin)
	}
	return origin, nil
}

// candidate is the normalised origin name a suffixed host stands for,
// onboarded or not. Only names, never IP literals or numeric forms.
func (m *SuffixMapper) candidate(hostport string) (string, error) {
	host, err := stripPort(hostport)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(host, "[") || mayBeIPLiteral(host) && net.ParseIP(host) != nil {
		return "", ErrIPLiteral
	}
	name, err := normalizeName(host)
	if err != nil {
		return "", err
	}
	origin, ok := strings.CutSuffix(name, m.dotSuffix)
	if !ok || origin == "" {
		return "", ErrNotSuffixed
	}
	if looksNumeric(origin) {
		return "", ErrIPLiteral
	}
	return origin, nil
}

// Suffix is the normalised suffix, without a leading dot.
func (m *SuffixMapper) Suffix() string { return m.suffix }

// ToSuffixed maps an origin host to its name under the suffix, if the host
// is onboarded.
func (m *SuffixMapper) ToSuffixed(origin string) (string, bool) {
	name, err := normalizeName(origin)
	if err != nil || looksNumeric(name) || !m.onboarded(name) {
		return "", false
	}
	return name + m.dotSuffix, true
}

// ForbiddenOriginAddr reports addresses a suffix-proxied origin may not
// resolve to unless its app is explicitly allowed them: they would let a
// user reach the appliance's own network through a public-looking name.
func ForbiddenOriginAddr(a netip.Addr) bool {
	a = a.Unmap()
	return !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() ||
		a.IsMulticast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() ||
		cgnat.Contains(a) || a == awsMetadataV6
}

var (
	cgnat         = netip.MustParsePrefix("100.64.0.0/10")
	awsMetadataV6 = netip.MustParseAddr("fd00:ec2::254")
)

func stripPort(hostport string) (string, error) {
	if hostport == "" {
		return "", ErrBadHost
	}
	if strings.IndexByte(hostport, ':') < 0 {
		return hostport, nil
	}
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return "", fmt.Errorf("%w: port %q", ErrBadHost, p)
		}
		return h, nil
	}
	if strings.Count(hostport, ":") > 0 && !strings.HasPrefix(hostport, "[") {
		return "", fmt.Errorf("%w: %q", ErrBadHost, hostport)
	}
	return hostport, nil
}

// normalizeName lowercases, drops one trailing dot, converts IDNA to ASCII
// and checks every label is LDH of 1–63 bytes (253 in all).
func normalizeName(h string) (string, error) {
	h = strings.TrimSuffix(h, ".")
	ascii, ok := plainASCIIName(h)
	if !ok {
		var err error
		if ascii, err = idna.Lookup.ToASCII(h); err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrBadHost, h, err)
		}
		ascii = strings.ToLower(ascii)
	}
	if ascii == "" || len(ascii) > 253 {
		return "", fmt.Errorf("%w: %q", ErrBadHost, h)
	}
	for label := range strings.SplitSeq(ascii, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("%w: %q", ErrBadHost, h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("%w: %q", ErrBadHost, h)
			}
		}
	}
	return ascii, nil
}

// plainASCIIName is h lower-cased when IDNA's lookup mapping would only
// lower-case it: letters, digits, '-' and '.', and no label with "--" in
// its third and fourth places (punycode "xn--" and the labels IDNA
// reserves), which go through idna. It runs for every request and every
// host a rewritten page names; idna costs microseconds per call.
func plainASCIIName(h string) (string, bool) {
	upper := false
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.':
		case c == '-':
			if i >= 2 && h[i-1] == '-' && (i == 3 || i >= 4 && h[i-4] == '.') {
				return "", false
			}
		case c >= 'A' && c <= 'Z':
			upper = true
		default:
			return "", false
		}
	}
	if upper {
		h = strings.ToLower(h)
	}
	return h, true
}

// looksNumeric reports names whose last label is a number (decimal, octal
// or hex): URL parsers and resolvers read those as IPv4 addresses
// ("2130706433", "0x7f.1", "127.1").
func looksNumeric(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if strings.HasPrefix(last, "0x") {
		// Only hex digits get as far as ParseUint (which then says whether
		// they fit): any other label is a name, decided without parsing.
		if !allBytes(last[2:], isHexDigit) {
			return false
		}
		_, err := strconv.ParseUint(last[2:]+"0", 16, 64)
		return err == nil
	}
	if last == "" || !allBytes(last, isDigit) {
		return false
	}
	_, err := strconv.ParseUint(last, 10, 64)
	return err == nil
}

// mayBeIPLiteral reports a host net.ParseIP could accept: an IPv6 form
// (it has a colon) or digits and dots only. Names (every other host) skip
// the parse.
func mayBeIPLiteral(host string) bool {
	return strings.IndexByte(host, ':') >= 0 || allBytes(host, func(c byte) bool { return isDigit(c) || c == '.' })
}

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool    { return c >= '0' && c <= '9' }
func isHexDigit(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
