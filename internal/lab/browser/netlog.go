package browser

import (
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
)

// NetEntry is one request a tab made, as the browser saw it. A redirect
// chain is one entry per hop: every hop but the last has the redirect's
// status (3xx) and RedirectedTo set.
type NetEntry struct {
	RequestID    string
	URL          string
	Method       string
	ResourceType string // Document, Stylesheet, Script, Image, Fetch, XHR, WebSocket, ...
	Status       int64  // 0 when no response arrived
	RedirectedTo string
	// Failure is the browser's error text from Network.loadingFailed (for
	// example net::ERR_CERT_AUTHORITY_INVALID), or a WebSocket frame error.
	Failure string
	// Canceled is set when the browser itself gave up on the request (a
	// navigation away, a stopped load): not a network failure.
	Canceled      bool
	BlockedReason string
}

// NetLog records the requests of one tab from Network.requestWillBeSent,
// responseReceived, loadingFailed and the WebSocket events.
type NetLog struct {
	mu      sync.Mutex
	entries []*NetEntry
	current map[network.RequestID]*NetEntry // latest hop of each request
}

func newNetLog() *NetLog {
	return &NetLog{current: make(map[network.RequestID]*NetEntry)}
}

// listen runs in chromedp's read loop for the tab: it must be quick and
// must not call back into the browser.
func (l *NetLog) listen(ev any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if e.Request == nil {
			return
		}
		if prev := l.current[e.RequestID]; prev != nil && e.RedirectResponse != nil {
			prev.Status = e.RedirectResponse.Status
			prev.RedirectedTo = e.Request.URL
		}
		n := &NetEntry{
			RequestID:    string(e.RequestID),
			URL:          e.Request.URL,
			Method:       e.Request.Method,
			ResourceType: string(e.Type),
		}
		l.current[e.RequestID] = n
		l.entries = append(l.entries, n)
	case *network.EventResponseReceived:
		if n := l.current[e.RequestID]; n != nil && e.Response != nil {
			n.Status = e.Response.Status
			if n.ResourceType == "" {
				n.ResourceType = string(e.Type)
			}
		}
	case *network.EventLoadingFailed:
		if n := l.current[e.RequestID]; n != nil {
			n.Failure = e.ErrorText
			n.Canceled = e.Canceled
			n.BlockedReason = string(e.BlockedReason)
		}
	case *network.EventWebSocketCreated:
		n := &NetEntry{RequestID: string(e.RequestID), URL: e.URL, Method: "GET", ResourceType: "WebSocket"}
		l.current[e.RequestID] = n
		l.entries = append(l.entries, n)
	case *network.EventWebSocketHandshakeResponseReceived:
		if n := l.current[e.RequestID]; n != nil && e.Response != nil {
			n.Status = e.Response.Status
		}
	case *network.EventWebSocketFrameError:
		if n := l.current[e.RequestID]; n != nil && n.Failure == "" {
			n.Failure = e.ErrorMessage
		}
	}
}

// Entries returns a copy of the requests recorded so far, in the order the
// browser announced them.
func (l *NetLog) Entries() []NetEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]NetEntry, len(l.entries))
	for i, e := range l.entries {
		out[i] = *e
	}
	return out
}

// Reset forgets every recorded request, so a test can check one step alone.
func (l *NetLog) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = nil
	l.current = make(map[network.RequestID]*NetEntry)
}

// networkURL reports whether a URL went (or would go) to the network:
// data:, blob:, about: and the like never leave the browser.
func networkURL(raw string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, true
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
		return u, true
	}
	return u, false
}

// AssertAllHostsUnder fails the test for every network request whose host
// is not a subdomain of suffix (host == suffix itself does not count), and
// when the tab made no network request at all.
func (l *NetLog) AssertAllHostsUnder(t testing.TB, suffix string) {
	t.Helper()
	suffix = strings.TrimPrefix(strings.ToLower(suffix), ".")
	var seen int
	for _, e := range l.Entries() {
		u, ok := networkURL(e.URL)
		if !ok {
			continue
		}
		seen++
		if u == nil {
			t.Errorf("netlog: unparsable request URL %q (%s)", e.URL, e.ResourceType)
			continue
		}
		if !strings.HasSuffix(strings.ToLower(u.Hostname()), "."+suffix) {
			t.Errorf("netlog: %s %s (%s) went to host %q, outside *.%s", e.Method, e.URL, e.ResourceType, u.Hostname(), suffix)
		}
	}
	if seen == 0 {
		t.Errorf("netlog: the tab made no network requests, nothing to check against *.%s", suffix)
	}
}

// AssertNoFailures fails the test for every request that failed in the
// network (Network.loadingFailed, except loads the browser canceled itself)
// and every response with status >= 400 whose status is not in allowed.
func (l *NetLog) AssertNoFailures(t testing.TB, allowedStatus ...int64) {
	t.Helper()
	for _, e := range l.Entries() {
		switch {
		case e.Failure != "" && !e.Canceled:
			t.Errorf("netlog: %s %s (%s) failed: %s %s", e.Method, e.URL, e.ResourceType, e.Failure, e.BlockedReason)
		case e.Status >= 400 && !slices.Contains(allowedStatus, e.Status):
			t.Errorf("netlog: %s %s (%s) answered status %d", e.Method, e.URL, e.ResourceType, e.Status)
		}
	}
}
