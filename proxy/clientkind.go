package proxy

import (
	"crypto/tls"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/classify"
)

// Which client a connection comes from (proxy/classify: JA4 + ALPN at the
// connection, the User-Agent once a request arrives), browsers blocked at
// access shown a page instead of an alert, and certificate-pinned native
// apps learnt into a pass-through list.

// ClientConfig turns on client classification and pinning pass-through.
type ClientConfig struct {
	// Classifier returns the data in force (reloadable); nil or a nil
	// classifier treats every client as a browser.
	Classifier func() *classify.Classifier
	// PassThroughTTL is how long a learnt pinned destination is spliced
	// (default 24h); PassThroughMax bounds the list (default 4096, oldest
	// dropped). PassThroughOff turns learning off.
	PassThroughTTL time.Duration
	PassThroughMax int
	PassThroughOff bool
}

// classifyConn classifies the connection from its ClientHello.
func (s *Server) classifyConn(ci *ConnInfo) {
	c := s.classifier()
	if c == nil {
		ci.ClientKind = browserKind
		return
	}
	in := classify.Input{JA4: ci.JA4}
	if ci.Hello != nil {
		in.ALPN = ci.Hello.ALPN
	}
	ci.ClientKind = c.Classify(in)
}

// browserKind is the classification when none is configured.
var browserKind = classify.Result{Client: policy.ClientBrowser, Family: classify.FamilyUnknown, Why: "no classifier configured"}

func (s *Server) classifier() *classify.Classifier {
	if s.cfg.Clients == nil || s.cfg.Clients.Classifier == nil {
		return nil
	}
	return s.cfg.Clients.Classifier()
}

// ClientOf is the classification of the client of r: the connection's,
// refined by the request's User-Agent, computed once per request.
func ClientOf(r *http.Request) classify.Result {
	st := stateOf(r.Context())
	ci := ConnInfoFrom(r.Context())
	if st != nil && st.clientDone {
		return st.client
	}
	res := browserKind
	if ci != nil {
		res = ci.ClientKind
		if ci.srv != nil {
			if c := ci.srv.classifier(); c != nil {
				res = ci.lastClient.classify(c, ci, r.UserAgent())
			}
		}
	}
	if st != nil {
		st.client, st.clientDone = res, true
	}
	return res
}

// clientMemo keeps one classification with what it was made from; the
// rest of the input (JA4, ALPN, plain or TLS) is the connection's.
type clientMemo struct {
	mu  sync.Mutex
	c   *classify.Classifier
	ua  string
	res classify.Result
}

// classify is c's classification of the connection's client with
// User-Agent ua: the last one when c and ua are the same (Classify is a
// function of its input), which saves making its Why per request.
func (m *clientMemo) classify(c *classify.Classifier, ci *ConnInfo, ua string) classify.Result {
	m.mu.Lock()
	if m.c == c && m.ua == ua {
		res := m.res
		m.mu.Unlock()
		return res
	}
	m.mu.Unlock()
	in := classify.Input{JA4: ci.JA4, UserAgent: ua, PlainHTTP: !ci.TLS}
	if ci.Hello != nil {
		in.ALPN = ci.Hello.ALPN
	}
	res := c.Classify(in)
	m.mu.Lock()
	m.c, m.ua, m.res = c, ua, res
	m.mu.Unlock()
	return res
}

// passThrough is the list of destinations learnt from certificate-pinned
// native clients: a connection from the same client family to the same
// name is spliced (the client sees the origin's certificate) until the
// entry expires or an admin removes it.
type passThrough struct {
	mu      sync.Mutex
	entries map[passKey]time.Time // expiry
	ttl     time.Duration
	max     int
	now     func() time.Time
}

type passKey struct{ host, family string }

// PassThroughEntry is one learnt destination.
type PassThroughEntry struct {
	Host    string    `json:"host"`
	Family  string    `json:"family"`
	Expires time.Time `json:"expires"`
}

func newPassThrough(cfg *ClientConfig) *passThrough {
	p := &passThrough{entries: map[passKey]time.Time{}, ttl: 24 * time.Hour, max: 4096, now: time.Now}
	if cfg != nil {
		if cfg.PassThroughTTL > 0 {
			p.ttl = cfg.PassThroughTTL
		}
		if cfg.PassThroughMax > 0 {
			p.max = cfg.PassThroughMax
		}
	}
	return p
}

func (p *passThrough) has(host, family string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	exp, ok := p.entries[passKey{host, family}]
	if ok && p.now().After(exp) {
		delete(p.entries, passKey{host, family})
		return false
	}
	return ok
}

// learn adds (host, family); the entry expiring first goes when full.
func (p *passThrough) learn(host, family string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.entries[passKey{host, family}]; !ok && len(p.entries) >= p.max {
		var oldest passKey
		var at time.Time
		for k, e := range p.entries {
			if at.IsZero() || e.Before(at) {
				oldest, at = k, e
			}
		}
		delete(p.entries, oldest)
	}
	p.entries[passKey{host, family}] = p.now().Add(p.ttl)
}

// PassThrough lists the learnt destinations, soonest to expire first.
func (s *Server) PassThrough() []PassThroughEntry {
	p := s.passthrough
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PassThroughEntry, 0, len(p.entries))
	now := p.now()
	for k, e := range p.entries {
		if now.Before(e) {
			out = append(out, PassThroughEntry{Host: k.host, Family: k.family, Expires: e})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Expires.Before(out[j].Expires) })
	return out
}

// RemovePassThrough removes a learnt destination (family "" removes the
// host for every family) and reports whether anything was removed.
func (s *Server) RemovePassThrough(host, family string) bool {
	p := s.passthrough
	p.mu.Lock()
	defer p.mu.Unlock()
	removed := false
	for k := range p.entries {
		if k.host == host && (family == "" || k.family == family) {
			delete(p.entries, k)
			removed = true
		}
	}
	return removed
}

// pinningFailure reports whether a client-side handshake failed the way a
// certificate-pinning client fails on the appliance's leaf: the client
// itself rejected the certificate with an alert.
func pinningFailure(err error) bool {
	var alert tls.AlertError
	if errors.As(err, &alert) {
		switch alert {
		case 42, 43, 45, 46, 48: // bad_certificate, unsupported, expired, unknown, unknown_ca
			return true
		}
	}
	s := err.Error()
	return strings.Contains(s, "remote error: tls: bad certificate") || strings.Contains(s, "remote error: tls: unknown certificate authority") ||
		strings.Contains(s, "remote error: tls: certificate unknown") ||
		// OpenSSL clients refusing a TLS 1.3 server's certificate send
		// their alert unencrypted where the server expects their Finished
		// under the handshake keys: Go reports a bad record MAC.
		strings.Contains(s, "local error: tls: bad record MAC")
}

// learnPinned notes a native client that refused the appliance's leaf:
// its destination is spliced from now on for its client family, and the
// learning is an event.
func (s *Server) learnPinned(ci *ConnInfo, err error) bool {
	if s.cfg.Clients == nil || s.cfg.Clients.PassThroughOff || ci.ClientKind.Client != policy.ClientMobileDesktop || ci.ServerName() == "" || !pinningFailure(err) {
		return false
	}
	s.passthrough.learn(ci.ServerName(), ci.ClientKind.Family)
	s.Stats.PassThroughLearnt.Add(1)
	s.logConn(ci, "learn", "pass-through learnt: "+ci.ClientKind.Family+" refused the gateway's certificate (pinned): "+err.Error(), 0, 0)
	return true
}

// blockPageConn answers every request of a connection a browser opened to
// a host blocked at access: the handshake completed with the appliance's
// leaf so the user reads why instead of a bare TLS error.
func (s *Server) blockPageConn(w http.ResponseWriter, r *http.Request, ci *ConnInfo, st *requestState) {
	d := ci.blockPage
	s.Stats.RequestsBlocked.Add(1)
	st.set("block", d.Reason)
	msg := d.Message
	if msg == "" {
		msg = "Access to this site is not allowed by your organisation's policy."
	}
	writeBlockPage(w, http.StatusForbidden, blockPage{Title: "Blocked by policy", Reason: msg, Host: r.Host, RequestID: st.id})
}
