package classify

import "strings"

// MaxUserAgentLen bounds the part of a User-Agent that is parsed; the rest
// is ignored. Real browser User-Agents stay under 300 bytes, and a bound
// keeps the per-request cost fixed whatever a client sends.
const MaxUserAgentLen = 512

// UA is what ParseUserAgent reads from a User-Agent. Strings are constants or
// substrings of the input; parsing allocates nothing.
type UA struct {
	// Product is the normalised client: a browser ("chrome", "edge",
	// "firefox", "safari", "opera", "samsung", "ie"), an app shell
	// ("electron", "webview"), a tool or library ("curl", "wget", "python",
	// "go", "git", "node", "okhttp", "java", "dalvik", "cfnetwork",
	// "powershell", "office"), "bot", or "" when not recognised.
	Product string
	// Token is the product token as written ("HeadlessChrome", "CriOS",
	// "python-requests", "Googlebot"); for an unrecognised native client its
	// first token.
	Token string
	// Major is the product's major version, 0 when it has none.
	Major int
	// Family is the TLS stack the product uses, in the data file's names:
	// every iOS browser is "safari" (WebKit and Apple's TLS), Chromium-based
	// browsers and Electron are "chromium"; "" when unknown.
	Family string
	// OS is "windows", "macos", "ios", "android", "chromeos", "linux" or "".
	OS string
	// OSVersion is the version the User-Agent reports; for Windows the NT
	// version (10.0 for Windows 10 and 11, 6.1 for Windows 7).
	OSVersion Version

	Browser  bool // a browser's User-Agent: Mozilla/… with a browser product and no app or bot marks
	Native   bool // names a tool, library or app, embedded browser views included
	Bot      bool // a crawler or monitor (…bot/1.0, +http://… contact, crawler, spider)
	Headless bool // HeadlessChrome: a browser driven by automation
}

// Version is a dotted version; missing parts are 0.
type Version struct{ Major, Minor, Patch int }

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Patch < w.Patch
}

// IsZero reports a version the User-Agent did not give.
func (v Version) IsZero() bool { return v == Version{} }

// appendTo writes the version with as many parts as are non-zero, and at
// least major.minor when minor2 is set (Windows NT versions).
func (v Version) appendTo(b []byte, minor2 bool) []byte {
	b = appendInt(b, v.Major)
	if minor2 || v.Minor != 0 || v.Patch != 0 {
		b = append(b, '.')
		b = appendInt(b, v.Minor)
	}
	if v.Patch != 0 {
		b = append(b, '.')
		b = appendInt(b, v.Patch)
	}
	return b
}

// Normalised products and OS names. The data file's thresholds are keyed by
// them, and Load refuses a key the parser never reports.
const (
	productChrome   = "chrome"
	productEdge     = "edge"
	productFirefox  = "firefox"
	productSafari   = "safari"
	productOpera    = "opera"
	productSamsung  = "samsung"
	productIE       = "ie"
	productElectron = "electron"
	productWebView  = "webview"
	productBot      = "bot"

	osWindows  = "windows"
	osMacOS    = "macos"
	osIOS      = "ios"
	osAndroid  = "android"
	osChromeOS = "chromeos"
	osLinux    = "linux"

	familyChromium = "chromium"
	familyFirefox  = "firefox"
	familySafari   = "safari"
)

// browserProducts are the products an outdated_browser threshold may name.
var browserProducts = []string{productChrome, productEdge, productFirefox, productSafari, productOpera, productSamsung, productIE}

// osNames are the systems an outdated_os threshold may name.
var osNames = []string{osWindows, osMacOS, osIOS, osAndroid, osChromeOS, osLinux}

// nativeTool maps the leading product token of non-browser clients to their
// product and TLS family. Matching is exact: these tokens are fixed by the
// tools themselves.
func nativeTool(name string) (product, family string) {
	switch name {
	case "curl":
		return "curl", "curl"
	case "Wget", "wget":
		return "wget", "wget"
	case "python-requests", "Python-urllib", "python-httpx", "aiohttp", "urllib3", "Python":
		return "python", "python"
	case "Go-http-client":
		return "go", "go"
	case "git", "JGit":
		return "git", "git"
	case "node", "node-fetch", "undici", "axios", "got":
		return "node", "node"
	case "okhttp":
		return "okhttp", "okhttp"
	case "Java", "Apache-HttpClient":
		return "java", "java"
	case "Dalvik":
		return "dalvik", ""
	case "CFNetwork":
		return "cfnetwork", familySafari
	case "WindowsPowerShell", "PowerShell":
		return "powershell", ""
	}
	return "", ""
}

// uaScan collects, in one pass, what the decision in ParseUserAgent needs.
type uaScan struct {
	first, firstVer string // the leading product token
	platform        string // the first comment, without its parentheses
	chrome          tokenVer
	chromeName      string // Chrome, Chromium or HeadlessChrome
	edge, opera     tokenVer
	samsung         tokenVer
	firefox         tokenVer
	crios, fxios    tokenVer
	edgios          tokenVer
	electron        tokenVer
	safari          bool // a Safari/ token
	version         tokenVer
	mobile          bool // a Mobile/ token (iOS WebKit)
	tool            tokenVer
	toolProduct     string
	toolFamily      string
	msie            int // MSIE n, or 11 for Trident/7
	bot             string
	webViewMark     bool // "; wv" in Android's platform comment
	powerShell      bool
}

type tokenVer struct {
	name string
	ver  string
	seen bool
}

// ParseUserAgent reads the product, version, OS and hints of a User-Agent.
// It looks at no more than MaxUserAgentLen bytes, allocates nothing and
// accepts any input.
func ParseUserAgent(ua string) UA {
	if len(ua) > MaxUserAgentLen {
		ua = ua[:MaxUserAgentLen]
	}
	var s uaScan
	s.scan(ua)
	return s.decide()
}

// scan walks product tokens ("name/version") and comments ("(…)").
func (s *uaScan) scan(ua string) {
	firstDone := false
	for i := 0; i < len(ua); {
		switch c := ua[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '(':
			end := commentEnd(ua, i)
			body := ua[i+1 : end]
			if s.platform == "" {
				s.platform = body
			}
			s.comment(body)
			i = end
			if i < len(ua) {
				i++ // the ')'
			}
		default:
			j := i
			for j < len(ua) && ua[j] != ' ' && ua[j] != '\t' && ua[j] != '(' {
				j++
			}
			name, ver, _ := cut(ua[i:j], '/')
			if !firstDone {
				s.first, s.firstVer, firstDone = name, ver, true
			}
			s.product(name, ver)
			i = j
		}
	}
}

// commentEnd returns the index of the ')' closing the comment opened at
// ua[open], nesting included, or len(ua) when it never closes.
func commentEnd(ua string, open int) int {
	depth := 0
	for i := open; i < len(ua); i++ {
		switch ua[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return len(ua)
}

func (s *uaScan) product(name, ver string) {
	tv := tokenVer{name: name, ver: ver, seen: true}
	switch name {
	case "Chrome", "Chromium", "HeadlessChrome":
		s.chrome, s.chromeName = tv, name
	case "Edg", "EdgA", "Edge":
		s.edge = tv
	case "EdgiOS":
		s.edgios = tv
	case "OPR", "OPiOS":
		s.opera = tv
	case "SamsungBrowser":
		s.samsung = tv
	case "Firefox":
		s.firefox = tv
	case "CriOS":
		s.crios = tv
	case "FxiOS":
		s.fxios = tv
	case "Safari":
		s.safari = true
	case "Version":
		s.version = tv
	case "Mobile":
		s.mobile = true
	case "Electron":
		s.electron = tv
	default:
		if p, f := nativeTool(name); p != "" && !s.tool.seen {
			s.tool, s.toolProduct, s.toolFamily = tv, p, f
		}
		if isBotToken(name) && s.bot == "" {
			s.bot = name
		}
	}
}

// comment looks inside a "(…)" for the marks that live there: MSIE,
// Android's WebView "wv", Office, and bots' contact URLs.
func (s *uaScan) comment(body string) {
	for rest := body; rest != ""; {
		var part string
		part, rest, _ = cut(rest, ';')
		part = trimSpaces(part)
		switch {
		case part == "wv":
			s.webViewMark = true
		case strings.HasPrefix(part, "MSIE "):
			if v := parseVersion(part[len("MSIE "):]); v.Major > 0 {
				s.msie = v.Major
			}
		case strings.HasPrefix(part, "Trident/7."): // IE 11 dropped "MSIE"
			if s.msie == 0 {
				s.msie = 11
			}
		case part == "ms-office" || strings.HasPrefix(part, "MSOffice"):
			if !s.tool.seen {
				s.tool, s.toolProduct = tokenVer{name: "ms-office", seen: true}, "office"
			}
		case strings.HasPrefix(part, "+http"):
			if s.bot == "" {
				s.bot = "bot"
			}
		default:
			// Only "name/version" parts: a device model such as "CUBOT"
			// in Android's comment is not a bot.
			name, _, isProduct := cut(part, '/')
			if isProduct && !strings.ContainsRune(name, ' ') && isBotToken(name) && s.bot == "" {
				s.bot = name
			}
		}
	}
}

// isBotToken reports a crawler's product name: one ending in "bot"
// (Googlebot, bingbot, AhrefsBot) or naming a crawler or spider. It is only
// called on product names, never on free text.
func isBotToken(name string) bool {
	if len(name) < 3 {
		return false
	}
	if hasSuffixFold(name, "bot") {
		return true
	}
	return containsFold(name, "crawler") || containsFold(name, "spider")
}

func (s *uaScan) decide() UA {
	var u UA
	u.OS, u.OSVersion = parsePlatform(s.platform)
	mozilla := s.first == "Mozilla"
	set := func(product, family string, tv tokenVer) {
		u.Product, u.Family, u.Token, u.Major = product, family, tv.name, parseVersion(tv.ver).Major
	}
	switch {
	case s.bot != "":
		u.Product, u.Token, u.Bot, u.Native = productBot, s.bot, true, true
		return u
	case s.tool.seen && (!mozilla || s.toolProduct == "office" || s.toolProduct == "powershell"):
		set(s.toolProduct, s.toolFamily, s.tool)
		u.Native = true
		return u
	case !mozilla && s.first != "":
		// An app that names itself first ("Slack/4.33 …", "Outlook-iOS/…").
		if s.first == "Opera" { // Presto-era Opera: "Opera/9.80 (…) Presto/…"
			u.Product, u.Family, u.Token, u.Major, u.Browser = productOpera, "", "Opera", parseVersion(s.firstVer).Major, true
			if s.version.seen {
				u.Major = parseVersion(s.version.ver).Major
			}
			return u
		}
		u.Token, u.Major, u.Native = s.first, parseVersion(s.firstVer).Major, true
		return u
	case !mozilla:
		return u // empty
	}

	u.Browser = true
	switch {
	case s.electron.seen:
		set(productElectron, familyChromium, s.electron)
		u.Browser, u.Native = false, true
	case s.edgios.seen:
		set(productEdge, familySafari, s.edgios)
	case s.crios.seen:
		set(productChrome, familySafari, s.crios)
	case s.fxios.seen:
		set(productFirefox, familySafari, s.fxios)
	case s.edge.seen:
		set(productEdge, familyChromium, s.edge)
	case s.opera.seen:
		set(productOpera, familyChromium, s.opera)
	case s.samsung.seen:
		set(productSamsung, familyChromium, s.samsung)
	case s.firefox.seen:
		set(productFirefox, familyFirefox, s.firefox)
	case s.chrome.seen:
		set(productChrome, familyChromium, s.chrome)
		u.Token, u.Headless = s.chromeName, s.chromeName == "HeadlessChrome"
		if s.webViewMark {
			u.Product, u.Browser, u.Native = productWebView, false, true
		}
	case s.safari && s.version.seen:
		set(productSafari, familySafari, s.version)
		u.Token = "Safari"
	case s.msie > 0:
		u.Product, u.Token, u.Major, u.Family = productIE, "MSIE", s.msie, ""
	case u.OS == osIOS && s.mobile && !s.safari:
		// WKWebView inside an iOS app: WebKit without Safari's tokens.
		u.Product, u.Token, u.Family = productWebView, "AppleWebKit", familySafari
		u.Browser, u.Native = false, true
	default:
		u.Browser = false // Mozilla/… but no browser product: not recognised
	}
	if u.OS == osIOS && u.Browser {
		u.Family = familySafari // every iOS browser runs on WebKit and Apple's TLS
	}
	return u
}

// parsePlatform reads the OS and its version from the platform comment.
func parsePlatform(p string) (string, Version) {
	var os string
	var ver Version
	for rest := p; rest != ""; {
		var part string
		part, rest, _ = cut(rest, ';')
		part = trimSpaces(part)
		switch {
		case strings.HasPrefix(part, "Windows NT"):
			// PowerShell writes "Windows NT; Windows NT 10.0": the first
			// without a version.
			if v := parseVersion(strings.TrimSpace(part[len("Windows NT"):])); !v.IsZero() {
				return osWindows, v
			}
			os = osWindows
		case strings.HasPrefix(part, "Android"):
			return osAndroid, parseVersion(strings.TrimSpace(part[len("Android"):]))
		case strings.Contains(part, "iPhone OS "):
			return osIOS, parseVersion(afterWord(part, "iPhone OS "))
		case strings.HasPrefix(part, "CPU OS "):
			return osIOS, parseVersion(part[len("CPU OS "):])
		case part == "iPhone" || part == "iPad" || part == "iPod" || part == "iPod touch":
			os = osIOS // the version comes in a later part
		case strings.Contains(part, "Mac OS X"):
			if os == "" {
				os, ver = osMacOS, parseVersion(strings.TrimSpace(afterWord(part, "Mac OS X")))
			}
		case strings.HasPrefix(part, "CrOS"):
			return osChromeOS, Version{}
		case part == "X11" || strings.HasPrefix(part, "Linux"):
			if os == "" {
				os = osLinux
			}
		}
	}
	return os, ver
}

func afterWord(s, word string) string {
	if i := strings.Index(s, word); i >= 0 {
		return s[i+len(word):]
	}
	return ""
}

// parseVersion reads up to three numeric parts separated by '.' or '_'
// (iOS and macOS write 17_1_2) and stops at anything else. Parts are capped
// at six digits so no input overflows.
func parseVersion(s string) Version {
	var parts [3]int
	n := 0
	for n < 3 {
		v, digits := 0, 0
		for digits < len(s) && s[digits] >= '0' && s[digits] <= '9' {
			if digits < 6 {
				v = v*10 + int(s[digits]-'0')
			}
			digits++
		}
		if digits == 0 {
			break
		}
		parts[n] = v
		n++
		s = s[digits:]
		if len(s) < 2 || (s[0] != '.' && s[0] != '_') {
			break
		}
		s = s[1:]
	}
	return Version{parts[0], parts[1], parts[2]}
}

// trimSpaces drops the spaces around a comment part (ASCII only: a
// User-Agent is ASCII, and anything else is not a token worth reading).
func trimSpaces(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// containsFold is a case-insensitive Contains for an ASCII lowercase needle,
// without the allocation of strings.ToLower.
func containsFold(s, needle string) bool {
	first := needle[0]
	for i := 0; i+len(needle) <= len(s); i++ {
		if s[i]|0x20 == first && strings.EqualFold(s[i:i+len(needle)], needle) {
			return true
		}
	}
	return false
}

func appendInt(b []byte, n int) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}
