package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"time"
)

// CookieName is the proxy's session cookie on every suffixed host.
const CookieName = "__Host-portcullis"

// maxCookie bounds a sealed session: browsers keep about 4 KiB per cookie.
const maxCookie = 3800

// Sessions seals identities into cookies with AES-256-GCM. Keys come from
// the secrets with HKDF-SHA256: the first seals, every one opens (rotation).
// The host a cookie was issued for is authenticated with it, so a cookie
// copied to another app's host does not open there.
type Sessions struct {
	aeads []cipher.AEAD
	ttl   time.Duration
	now   func() time.Time

	opened openedSessions
}

// openedSessions remembers the cookies Get opened, by the SHA-256 of the
// host and the cookie's value: a browser sends the same cookie with every
// request, and opening it (base64, AES-GCM, JSON) costs about twenty
// allocations and several microseconds each time. Only a cookie that opened
// is remembered, so a tampered or foreign one is never found here; its
// expiry is checked at every use, as when it is opened. The sessions are
// stateless (a cookie is valid until it expires whatever happens on the
// server), so remembering one changes nothing about which are accepted. At
// maxOpened entries the set starts again empty: bounded memory, and one
// more open per live session.
type openedSessions struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]sealedSession
}

const maxOpened = 4096

func openedKey(host, value string) [sha256.Size]byte {
	var buf [1024]byte // most cookies: hashed from the stack
	return sha256.Sum256(append(append(append(buf[:0], host...), 0), value...))
}

func (o *openedSessions) get(k [sha256.Size]byte) (sealedSession, bool) {
	o.mu.Lock()
	ss, ok := o.m[k]
	o.mu.Unlock()
	return ss, ok
}

func (o *openedSessions) put(k [sha256.Size]byte, ss sealedSession) {
	o.mu.Lock()
	if o.m == nil || len(o.m) >= maxOpened {
		o.m = make(map[[sha256.Size]byte]sealedSession)
	}
	o.m[k] = ss
	o.mu.Unlock()
}

// NewSessions checks each secret has at least 32 bytes.
func NewSessions(secrets [][]byte, ttl time.Duration) (*Sessions, error) {
	if len(secrets) == 0 {
		return nil, errors.New("sessions: no secret")
	}
	if ttl <= 0 {
		return nil, errors.New("sessions: the lifetime must be positive")
	}
	s := &Sessions{ttl: ttl, now: time.Now}
	for i, sec := range secrets {
		a, err := newAEAD(sec, "portcullis session v1")
		if err != nil {
			return nil, fmt.Errorf("sessions: secret %d: %w", i+1, err)
		}
		s.aeads = append(s.aeads, a)
	}
	return s, nil
}

func newAEAD(secret []byte, purpose string) (cipher.AEAD, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("%d bytes, at least 32 needed", len(secret))
	}
	key, err := hkdf.Key(sha256.New, secret, nil, purpose, 32)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

type sealedSession struct {
	Identity
	Exp int64 `json:"x"`
}

// seal encrypts v for host under the first key.
func seal(a cipher.AEAD, host, kind string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	_, _ = rand.Read(nonce)
	out := a.Seal(nonce, nonce, plain, []byte(kind+"|"+host))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

func open(aeads []cipher.AEAD, host, kind, value string, v any) bool {
	if len(value) > maxCookie*2 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return false
	}
	for _, a := range aeads {
		if len(raw) < a.NonceSize()+a.Overhead() {
			return false
		}
		plain, err := a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], []byte(kind+"|"+host))
		if err == nil {
			return json.Unmarshal(plain, v) == nil
		}
	}
	return false
}

// Set issues the session cookie for host (the suffixed host the browser
// uses).
func (s *Sessions) Set(w http.ResponseWriter, host string, id Identity) error {
	now := s.now()
	exp := now.Add(s.ttl)
	if !id.Expires.IsZero() && id.Expires.Before(exp) {
		exp = id.Expires
	}
	if !exp.After(now.Add(time.Second)) {
		return fmt.Errorf("session for %s: the identity expired at %s", id.User, exp.Format(time.RFC3339))
	}
	v, err := seal(s.aeads[0], canonicalHost(host), "session", sealedSession{Identity: id, Exp: exp.Unix()})
	if err != nil {
		return err
	}
	if len(v) > maxCookie {
		return ErrSessionTooLarge
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: v, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(exp.Sub(now).Seconds())})
	return nil
}

// Get opens the session cookie of r for host. A missing, tampered, expired
// or other host's cookie gives false. The identity's slices and map may be
// shared with other requests carrying the same cookie: they are read, never
// written (the slices have no spare capacity, so an append copies).
//
// The cookie values are those r.CookiesNamed(CookieName) gives, found
// without its per-request slice and Cookie values (sessionCookies): Get
// runs for every request of a signed-in browser.
func (s *Sessions) Get(r *http.Request, host string) (Identity, bool) {
	lines := r.Header["Cookie"]
	if len(lines) == 0 {
		return Identity{}, false
	}
	host = canonicalHost(host)
	now := s.now().Unix()
	var found Identity
	ok := sessionCookies(lines, func(value string) bool {
		if len(value) > maxCookie*2 {
			return false
		}
		k := openedKey(host, value)
		ss, ok := s.opened.get(k)
		if !ok {
			var fresh sealedSession
			if !open(s.aeads, host, "session", value, &fresh) {
				return false
			}
			fresh.Groups, fresh.DeviceTags = slices.Clip(fresh.Groups), slices.Clip(fresh.DeviceTags)
			s.opened.put(k, fresh)
			ss = fresh
		}
		if now < ss.Exp {
			found = ss.Identity
			found.Expires = time.Unix(ss.Exp, 0)
			return true
		}
		return false
	})
	if !ok {
		return Identity{}, false
	}
	return found, true
}

// maxCookieCount is net/http's default bound on the cookies of a request
// (readCookies gives none beyond it).
const maxCookieCount = 3000

// sessionCookies calls try with the value of every CookieName cookie of the
// Cookie lines, in order, as net/http's readCookies parses them (each
// cookie and its name trimmed, a quoted value unquoted, a value holding a
// byte a cookie may not hold skipped), until try reports true; it reports
// whether one did.
// Lines holding more cookies than net/http accepts are left to
// Request.CookiesNamed itself (its limit can be changed by GODEBUG).
func sessionCookies(lines []string, try func(value string) bool) bool {
	count := 0
	for _, line := range lines {
		count += strings.Count(line, ";") + 1
	}
	if count > maxCookieCount {
		r := http.Request{Header: http.Header{"Cookie": lines}}
		for _, c := range r.CookiesNamed(CookieName) {
			if try(c.Value) {
				return true
			}
		}
		return false
	}
	for _, line := range lines {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			name, val, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(name) != CookieName {
				continue
			}
			if len(val) > 1 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			if validCookieValue(val) && try(val) {
				return true
			}
		}
	}
	return false
}

// validCookieValue is net/http's test of a (unquoted) cookie value.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

// canonicalHost lower-cases host and drops a port and a trailing dot, so
// "App.Example.com.gw.test:443" and "app.example.com.gw.test" are one host.
func canonicalHost(host string) string {
	if strings.IndexByte(host, ':') >= 0 { // no colon: no port to split off
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// Clear removes the session cookie.
func (s *Sessions) Clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", Secure: true, HttpOnly: true, MaxAge: -1})
}
