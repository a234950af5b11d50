package classify

import "testing"

// Real User-Agents, as the clients send them.
func TestParseUserAgent(t *testing.T) {
	for _, c := range []struct {
		name, ua string
		want     UA
	}{
		{"chrome windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
			UA{Product: "chrome", Token: "Chrome", Major: 120, Family: "chromium", OS: "windows", OSVersion: Version{10, 0, 0}, Browser: true}},
		{"headless chromium (lab capture)", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
			UA{Product: "chrome", Token: "HeadlessChrome", Major: 156, Family: "chromium", OS: "linux", Browser: true, Headless: true}},
		{"chrome android reduced", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
			UA{Product: "chrome", Token: "Chrome", Major: 124, Family: "chromium", OS: "android", OSVersion: Version{10, 0, 0}, Browser: true}},
		{"chrome ios", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
			UA{Product: "chrome", Token: "CriOS", Major: 120, Family: "safari", OS: "ios", OSVersion: Version{17, 1, 0}, Browser: true}},
		{"edge", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
			UA{Product: "edge", Token: "Edg", Major: 120, Family: "chromium", OS: "windows", OSVersion: Version{10, 0, 0}, Browser: true}},
		{"opera", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 OPR/105.0.0.0",
			UA{Product: "opera", Token: "OPR", Major: 105, Family: "chromium", OS: "windows", OSVersion: Version{10, 0, 0}, Browser: true}},
		{"samsung internet", "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
			UA{Product: "samsung", Token: "SamsungBrowser", Major: 23, Family: "chromium", OS: "android", OSVersion: Version{13, 0, 0}, Browser: true}},
		{"firefox esr (lab capture)", "Mozilla/5.0 (X11; Linux x86_64; rv:153.0) Gecko/20100101 Firefox/153.0",
			UA{Product: "firefox", Token: "Firefox", Major: 153, Family: "firefox", OS: "linux", Browser: true}},
		{"firefox mac frozen", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0",
			UA{Product: "firefox", Token: "Firefox", Major: 121, Family: "firefox", OS: "macos", OSVersion: Version{10, 15, 0}, Browser: true}},
		{"firefox windows 7", "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:115.0) Gecko/20100101 Firefox/115.0",
			UA{Product: "firefox", Token: "Firefox", Major: 115, Family: "firefox", OS: "windows", OSVersion: Version{6, 1, 0}, Browser: true}},
		{"safari mac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
			UA{Product: "safari", Token: "Safari", Major: 17, Family: "safari", OS: "macos", OSVersion: Version{10, 15, 7}, Browser: true}},
		{"safari ipad", "Mozilla/5.0 (iPad; CPU OS 14_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.1.2 Mobile/15E148 Safari/604.1",
			UA{Product: "safari", Token: "Safari", Major: 14, Family: "safari", OS: "ios", OSVersion: Version{14, 8, 0}, Browser: true}},
		{"ie 11", "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
			UA{Product: "ie", Token: "MSIE", Major: 11, OS: "windows", OSVersion: Version{6, 1, 0}, Browser: true}},
		{"ie 8", "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)",
			UA{Product: "ie", Token: "MSIE", Major: 8, OS: "windows", OSVersion: Version{5, 1, 0}, Browser: true}},
		{"electron app", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.33.90 Chrome/116.0.5845.179 Electron/26.2.1 Safari/537.36",
			UA{Product: "electron", Token: "Electron", Major: 26, Family: "chromium", OS: "windows", OSVersion: Version{10, 0, 0}, Native: true}},
		{"android webview", "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36",
			UA{Product: "webview", Token: "Chrome", Major: 116, Family: "chromium", OS: "android", OSVersion: Version{13, 0, 0}, Native: true}},
		{"ios wkwebview", "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
			UA{Product: "webview", Token: "AppleWebKit", Family: "safari", OS: "ios", OSVersion: Version{16, 6, 0}, Native: true}},
		{"curl", "curl/7.88.1", UA{Product: "curl", Token: "curl", Major: 7, Family: "curl", Native: true}},
		{"wget", "Wget/1.21.3", UA{Product: "wget", Token: "Wget", Major: 1, Family: "wget", Native: true}},
		{"python urllib", "Python-urllib/3.11", UA{Product: "python", Token: "Python-urllib", Major: 3, Family: "python", Native: true}},
		{"python requests", "python-requests/2.28.1", UA{Product: "python", Token: "python-requests", Major: 2, Family: "python", Native: true}},
		{"go", "Go-http-client/2.0", UA{Product: "go", Token: "Go-http-client", Major: 2, Family: "go", Native: true}},
		{"git", "git/2.39.5", UA{Product: "git", Token: "git", Major: 2, Family: "git", Native: true}},
		{"node fetch", "node", UA{Product: "node", Token: "node", Family: "node", Native: true}},
		{"okhttp", "okhttp/4.12.0", UA{Product: "okhttp", Token: "okhttp", Major: 4, Family: "okhttp", Native: true}},
		{"dalvik", "Dalvik/2.1.0 (Linux; U; Android 9; SM-G960F Build/PPR1.180610.011)",
			UA{Product: "dalvik", Token: "Dalvik", Major: 2, OS: "android", OSVersion: Version{9, 0, 0}, Native: true}},
		{"ios app", "Outlook-iOS/723.4027091.prod.iphone (4.2345.0)", UA{Token: "Outlook-iOS", Major: 723, Native: true}},
		{"cfnetwork app", "MyApp/1.2 CFNetwork/1410.0.3 Darwin/22.4.0",
			UA{Product: "cfnetwork", Token: "CFNetwork", Major: 1410, Family: "safari", Native: true}},
		{"powershell", "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.19041.3570",
			UA{Product: "powershell", Token: "WindowsPowerShell", Major: 5, OS: "windows", OSVersion: Version{10, 0, 0}, Native: true}},
		{"office", "Mozilla/4.0 (compatible; ms-office; MSOffice 16)", UA{Product: "office", Token: "ms-office", Native: true}},
		{"googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			UA{Product: "bot", Token: "Googlebot", Bot: true, Native: true}},
		{"googlebot smartphone", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.71 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			UA{Product: "bot", Token: "Googlebot", OS: "android", OSVersion: Version{6, 0, 1}, Bot: true, Native: true}},
		{"phone model is not a bot", "Mozilla/5.0 (Linux; Android 11; CUBOT) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
			UA{Product: "chrome", Token: "Chrome", Major: 120, Family: "chromium", OS: "android", OSVersion: Version{11, 0, 0}, Browser: true}},
		{"chromeos", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
			UA{Product: "chrome", Token: "Chrome", Major: 120, Family: "chromium", OS: "chromeos", Browser: true}},
		{"presto opera", "Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18",
			UA{Product: "opera", Token: "Opera", Major: 12, OS: "windows", OSVersion: Version{6, 1, 0}, Browser: true}},
		{"bare mozilla", "Mozilla/5.0", UA{}},
		{"empty", "", UA{}},
		{"unclosed comment", "Mozilla/5.0 (Windows NT 6.1", UA{OS: "windows", OSVersion: Version{6, 1, 0}}},
	} {
		if got := ParseUserAgent(c.ua); got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

func TestParseUserAgentIsBounded(t *testing.T) {
	long := "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0 "
	for len(long) < 10*MaxUserAgentLen {
		long += "x/1 "
	}
	long += "curl/8.0" // past the bound: not seen
	if got := ParseUserAgent(long); got.Product != "chrome" {
		t.Errorf("long UA: product %q, want chrome (the tail past %d bytes is ignored)", got.Product, MaxUserAgentLen)
	}
	if got := parseVersion("99999999999999999999.1"); got.Major != 999999 || got.Minor != 1 {
		t.Errorf("huge version: %+v", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = ParseUserAgent(long) }); n != 0 {
		t.Errorf("ParseUserAgent allocates %v times, want 0", n)
	}
}
