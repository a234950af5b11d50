package classify

import "github.com/portcullis-gw/portcullis/policy"

// FamilyUnknown is the family of a client whose JA4 is not in the data file
// and whose User-Agent names no known stack.
const FamilyUnknown = "unknown"

// Input is what the proxy knows about a client.
type Input struct {
	JA4       string   // of the ClientHello, as proxy.ClientHello.JA4 computes it
	ALPN      []string // the protocols the client offered, in its order
	UserAgent string   // of the request; "" when not yet known (connection level)
	// PlainHTTP: the request came without TLS (port 80), so there is no
	// stack to judge and the User-Agent alone decides (plain.go).
	PlainHTTP bool
}

// Result is the classification and why.
type Result struct {
	Client policy.ClientApp // browser or mobile_desktop
	// Family is the TLS stack's family from the data file ("chromium",
	// "firefox", "curl", "python", "go"…); for an unknown JA4 the one the
	// User-Agent names, or FamilyUnknown.
	Family string
	// UATags holds policy.UAOutdatedBrowser, policy.UAOutdatedOS and
	// policy.UANativeClient, in that order. The slice is shared between
	// results: read it, never modify it.
	UATags []string
	// Match says how the JA4 was found; MatchNone means ALPN and
	// User-Agent decided, and Why says "unverified" for a browser.
	Match Match
	// Why explains the decision for logs and the policy explanation, e.g.
	// "ja4 t13d1516h2_8daaf6152771_02713d6af862 = chromium (exact; source:
	// …); ua Chrome/120 agrees".
	Why string
}

// Classifier holds one data file's tables. It is immutable once built and
// safe for concurrent use; a reload builds a new one and swaps it in.
type Classifier struct {
	families   map[string]*family
	exact      map[string]*fingerprint   // whole JA4
	cipherSet  map[string]*fingerprint   // JA4_a + "_" + JA4_b
	patterns   map[string][]*fingerprint // by JA4_b, in file order
	browserMin map[string]int            // product → lowest major not outdated
	osRules    map[string]*osRule
	entries    int
}

// osRule says which reported versions of a system are outdated.
type osRule struct {
	below  Version
	frozen []Version // values browsers report whatever the real version: not judged
}

func newClassifier() *Classifier {
	return &Classifier{
		families:   map[string]*family{},
		exact:      map[string]*fingerprint{},
		cipherSet:  map[string]*fingerprint{},
		patterns:   map[string][]*fingerprint{},
		browserMin: map[string]int{},
		osRules:    map[string]*osRule{},
	}
}

func (c *Classifier) add(f *fingerprint) {
	c.entries++
	switch f.kind {
	case MatchExact:
		c.exact[f.ja4] = f
	case MatchCipherSet:
		c.cipherSet[f.ja4[:ja4ABLen]] = f
	case MatchPattern:
		b := f.ja4[ja4BStart:ja4ABLen]
		c.patterns[b] = append(c.patterns[b], f)
	}
}

// Len is the number of fingerprint entries.
func (c *Classifier) Len() int { return c.entries }

// lookup finds the most specific entry for a JA4.
func (c *Classifier) lookup(ja4 string) *fingerprint {
	if !wellFormedJA4(ja4) {
		return nil
	}
	if f := c.exact[ja4]; f != nil {
		return f
	}
	if f := c.cipherSet[ja4[:ja4ABLen]]; f != nil {
		return f
	}
	for _, f := range c.patterns[ja4[ja4BStart:ja4ABLen]] {
		if f.matches(ja4) {
			return f
		}
	}
	return nil
}

// Tag sets, shared by every result (bit 0 outdated_browser, 1 outdated_os,
// 2 native_client), so a result costs no allocation for its tags.
const (
	tagOutdatedBrowser = 1 << iota
	tagOutdatedOS
	tagNative
)

var tagSets = func() (sets [8][]string) {
	for m := 1; m < len(sets); m++ {
		if m&tagOutdatedBrowser != 0 {
			sets[m] = append(sets[m], policy.UAOutdatedBrowser)
		}
		if m&tagOutdatedOS != 0 {
			sets[m] = append(sets[m], policy.UAOutdatedOS)
		}
		if m&tagNative != 0 {
			sets[m] = append(sets[m], policy.UANativeClient)
		}
		sets[m] = sets[m][:len(sets[m]):len(sets[m])] // an append by a caller copies
	}
	return sets
}()

// whyBufLen fits every explanation of the shipped data; a longer source
// only costs a second allocation.
const whyBufLen = 384

// Classify decides browser or native client, the family and the tags, as
// doc.go describes. It does no I/O and allocates only the Why string.
func (c *Classifier) Classify(in Input) Result {
	ua := ParseUserAgent(in.UserAgent)
	var buf [whyBufLen]byte
	why := append(buf[:0], "ja4 "...)
	if in.JA4 == "" {
		why = append(why, "(none)"...)
	}
	why = appendClean(why, in.JA4, ja4Len)

	var r Result
	if in.PlainHTTP && in.JA4 == "" {
		r.Family, r.Client, why = plainStack(&ua, in.UserAgent != "", why)
	} else if f := c.lookup(in.JA4); f != nil {
		r.Match, r.Family = f.kind, f.family.name
		why = append(why, " = "...)
		why = append(why, f.family.name...)
		why = append(why, " ("...)
		why = append(why, f.kind.String()...)
		if f.kind != MatchExact {
			why = append(why, ' ')
			why = append(why, f.ja4...)
		}
		why = append(why, "; source: "...)
		why = append(why, f.source...)
		why = append(why, ')')
		r.Client, why = knownStack(f.family, &ua, in.UserAgent != "", why)
	} else {
		r.Family, r.Client, why = unknownStack(&ua, in.UserAgent != "", offersH2(in.ALPN), why)
	}

	tags := 0
	if r.Client == policy.ClientMobileDesktop {
		tags |= tagNative
	}
	if r.Client == policy.ClientBrowser && ua.Browser {
		var outdated bool
		if outdated, why = c.browserOutdated(&ua, why); outdated {
			tags |= tagOutdatedBrowser
		}
	}
	if ua.OS != "" {
		var outdated bool
		if outdated, why = c.osOutdated(&ua, why); outdated {
			tags |= tagOutdatedOS
		}
	}
	r.UATags = tagSets[tags]
	r.Why = string(why)
	return r
}

// knownStack applies the User-Agent to a family the data file knows.
func knownStack(f *family, ua *UA, haveUA bool, why []byte) (policy.ClientApp, []byte) {
	switch {
	case !haveUA:
		why = append(why, "; no user-agent yet"...)
		return f.client, why
	case f.client == policy.ClientMobileDesktop:
		why = append(why, "; ua "...)
		why = appendProduct(why, ua)
		switch {
		case ua.Browser:
			why = append(why, " claims a browser over a "...)
			why = append(why, f.name...)
			why = append(why, " TLS stack: native"...)
		case ua.Family == f.name:
			why = append(why, " agrees"...)
		}
		return policy.ClientMobileDesktop, why
	case ua.Native:
		why = append(why, "; ua "...)
		why = appendProduct(why, ua)
		why = append(why, nativeWhat(ua)...)
		why = append(why, " over the "...)
		why = append(why, f.name...)
		why = append(why, " stack: native"...)
		return policy.ClientMobileDesktop, why
	case ua.Browser && ua.Family == f.name:
		why = append(why, "; ua "...)
		why = appendProduct(why, ua)
		why = append(why, " agrees"...)
	case ua.Browser:
		why = append(why, "; ua "...)
		why = appendProduct(why, ua)
		why = append(why, " is not a "...)
		why = append(why, f.name...)
		why = append(why, " browser; kept browser, the stack decides"...)
	default:
		why = append(why, "; ua not recognised; the stack decides"...)
	}
	return f.client, why
}

// unknownStack is the fallback of doc.go's "Unknown fingerprints".
func unknownStack(ua *UA, haveUA, h2 bool, why []byte) (string, policy.ClientApp, []byte) {
	fam := ua.Family
	if fam == "" {
		fam = FamilyUnknown
	}
	why = append(why, " unknown"...)
	switch {
	case ua.Native:
		why = append(why, "; ua "...)
		why = appendProduct(why, ua)
		why = append(why, nativeWhat(ua)...)
		why = append(why, ": native"...)
		return fam, policy.ClientMobileDesktop, why
	case !h2:
		why = append(why, "; no h2 offered (every browser offers it): native"...)
		if ua.Browser {
			why = append(why, " despite ua "...)
			why = appendProduct(why, ua)
		}
		return fam, policy.ClientMobileDesktop, why
	case ua.Browser:
		why = append(why, "; ua "...)
		why = appendProduct(why, ua)
		why = append(why, ": browser (unverified: fingerprint not in the data file)"...)
		return fam, policy.ClientBrowser, why
	case haveUA:
		why = append(why, "; h2 offered, ua not recognised: browser (unverified)"...)
		return fam, policy.ClientBrowser, why
	}
	why = append(why, "; h2 offered, no user-agent yet: browser (unverified)"...)
	return fam, policy.ClientBrowser, why
}

func nativeWhat(ua *UA) string {
	switch {
	case ua.Bot:
		return " is a bot"
	case ua.Product == productElectron:
		return " is an Electron app"
	case ua.Product == productWebView:
		return " is an app's embedded web view"
	}
	return " is a native client"
}

func (c *Classifier) browserOutdated(ua *UA, why []byte) (bool, []byte) {
	min, ok := c.browserMin[ua.Product]
	if !ok || ua.Major == 0 || ua.Major >= min {
		return false, why
	}
	why = append(why, "; "...)
	why = append(why, ua.Product...)
	why = append(why, ' ')
	why = appendInt(why, ua.Major)
	why = append(why, " < "...)
	why = appendInt(why, min)
	why = append(why, ": outdated browser"...)
	return true, why
}

func (c *Classifier) osOutdated(ua *UA, why []byte) (bool, []byte) {
	rule := c.osRules[ua.OS]
	if rule == nil || ua.OSVersion.IsZero() {
		return false, why
	}
	nt := ua.OS == osWindows
	for _, f := range rule.frozen {
		if ua.OSVersion == f {
			why = append(why, "; "...)
			why = appendOS(why, ua.OS)
			why = ua.OSVersion.appendTo(why, nt)
			why = append(why, " is a frozen value browsers report: os not judged"...)
			return false, why
		}
	}
	if !ua.OSVersion.Less(rule.below) {
		return false, why
	}
	why = append(why, "; "...)
	why = appendOS(why, ua.OS)
	why = ua.OSVersion.appendTo(why, nt)
	why = append(why, " < "...)
	why = rule.below.appendTo(why, nt)
	why = append(why, ": outdated os"...)
	return true, why
}

// appendOS names the system before its version; Windows versions are NT
// versions, and say so.
func appendOS(b []byte, os string) []byte {
	b = append(b, os...)
	if os == osWindows {
		return append(b, " nt "...)
	}
	return append(b, ' ')
}

func offersH2(alpn []string) bool {
	for _, p := range alpn {
		if p == "h2" {
			return true
		}
	}
	return false
}

// appendProduct writes "Token/Major" (or the token alone), cleaned.
func appendProduct(b []byte, ua *UA) []byte {
	if ua.Token == "" {
		return append(b, '?')
	}
	b = appendClean(b, ua.Token, 40)
	if ua.Major > 0 {
		b = append(b, '/')
		b = appendInt(b, ua.Major)
	}
	return b
}

// appendClean copies client-supplied text into an explanation: at most max
// bytes, printable ASCII only, so a log line cannot be forged or broken.
func appendClean(b []byte, s string, max int) []byte {
	if len(s) > max {
		s = s[:max]
	}
	clean := true
	for i := 0; i < len(s) && clean; i++ {
		clean = s[i] >= 0x20 && s[i] < 0x7f
	}
	if clean {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b = append(b, c)
		} else {
			b = append(b, '?')
		}
	}
	return b
}
