package control

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Config is what a Controller needs. Zero values take the defaults.
type Config struct {
	// Key is the appliance's secret (at least 32 bytes), shared by a fleet
	// so that a token issued by one appliance is accepted by another.
	Key []byte
	// Endpoint is the path prefix of the control endpoints on every
	// controlled host; it must start and end with "/". Default
	// DefaultEndpoint.
	Endpoint string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// TokenTTL is how long a page's report token and a notice
	// acknowledgement stay valid; default 12 hours.
	TokenTTL time.Duration
	// SessionID, when set, names the session of a request (the proxy's own
	// login session in suffix mode); "" means none. Without it the
	// Controller keeps its own session cookie (SessionCookieName).
	SessionID func(r *http.Request) string
}

// DefaultEndpoint is the path prefix of the control endpoints.
const DefaultEndpoint = "/.portcullis/"

// Controller injects the control script and serves its endpoints. It is
// safe for concurrent use.
type Controller struct {
	endpoint  string
	now       func() time.Time
	ttl       time.Duration
	sessionID func(r *http.Request) string

	reportKey, noticeKey, stateKey, csrfKey, sessionKey macKey
}

// New checks cfg and derives the Controller's keys.
func New(cfg Config) (*Controller, error) {
	if len(cfg.Key) < 32 {
		return nil, fmt.Errorf("control: key has %d bytes, at least 32 needed", len(cfg.Key))
	}
	c := &Controller{endpoint: cfg.Endpoint, now: cfg.Now, ttl: cfg.TokenTTL, sessionID: cfg.SessionID}
	if c.endpoint == "" {
		c.endpoint = DefaultEndpoint
	}
	if !validEndpoint(c.endpoint) {
		return nil, fmt.Errorf("control: endpoint %q must be an absolute path ending in /, of letters, digits and ._-", c.endpoint)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.ttl == 0 {
		c.ttl = 12 * time.Hour
	}
	if c.ttl < time.Minute {
		return nil, errors.New("control: token lifetime under a minute")
	}
	for _, k := range []struct {
		dst     *macKey
		purpose string
	}{{&c.reportKey, "report"}, {&c.noticeKey, "notice"}, {&c.stateKey, "notice state"}, {&c.csrfKey, "notice csrf"}, {&c.sessionKey, "session"}} {
		var err error
		if *k.dst, err = deriveKey(cfg.Key, k.purpose); err != nil {
			return nil, fmt.Errorf("control: %w", err)
		}
	}
	return c, nil
}

// validEndpoint keeps the prefix to characters that need no escaping in a
// URL, an HTML attribute, JSON or a CSP source.
func validEndpoint(p string) bool {
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] != '/' || strings.Contains(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/._-", c) >= 0) {
			return false
		}
	}
	return !strings.Contains(p, "/./") && !strings.Contains(p, "/../")
}

// Endpoint is the path prefix the Controller serves.
func (c *Controller) Endpoint() string { return c.endpoint }

// canonicalHost lower-cases host and drops the port and a trailing dot, so
// that every token bound to a host means the same name however the
// browser spelt it.
func canonicalHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}
