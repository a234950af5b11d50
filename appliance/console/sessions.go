package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"sync"
	"time"
)

// sessionCookie is the console's session cookie. The __Host- prefix makes
// browsers accept it only when Secure, without Domain and with Path=/, so a
// sibling host cannot plant or overwrite it.
const sessionCookie = "__Host-portcullis-console"

// session is one logged-in browser or API client.
type session struct {
	key      string // SHA-256 of the token: the token itself is never stored
	User     string
	Role     Role
	CSRF     string
	Created  time.Time
	LastSeen time.Time
	Source   string
}

// sessions are kept in memory: a restart logs everyone out, which is the
// safe direction, and there is nothing on disk to steal.
type sessions struct {
	mu    sync.Mutex
	byKey map[string]*session
	idle  time.Duration
	life  time.Duration
	now   func() time.Time
}

func newSessions(idle, life time.Duration, now func() time.Time) *sessions {
	return &sessions{byKey: map[string]*session{}, idle: idle, life: life, now: now}
}

func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// create starts a session and returns its token. Tokens are always new:
// nothing the client sent before logging in is ever promoted to a session,
// which is what makes session fixation impossible.
func (s *sessions) create(user string, role Role, source string) (string, *session) {
	token := randomToken(32)
	now := s.now()
	ss := &session{key: tokenKey(token), User: user, Role: role, CSRF: randomToken(32), Created: now, LastSeen: now, Source: source}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	s.byKey[ss.key] = ss
	return token, ss
}

// get returns the live session of token and marks it used, or nil when it
// does not exist or has passed its idle or absolute timeout.
func (s *sessions) get(token string) *session {
	if token == "" {
		return nil
	}
	key := tokenKey(token)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byKey[key]
	if !ok {
		return nil
	}
	if s.expired(ss, now) {
		delete(s.byKey, key)
		return nil
	}
	ss.LastSeen = now
	c := *ss
	return &c
}

func (s *sessions) expired(ss *session, now time.Time) bool {
	return now.Sub(ss.LastSeen) > s.idle || now.Sub(ss.Created) > s.life
}

func (s *sessions) expireLocked(now time.Time) {
	for k, ss := range s.byKey {
		if s.expired(ss, now) {
			delete(s.byKey, k)
		}
	}
}

// end logs a session out.
func (s *sessions) end(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byKey, key)
}

// endUser ends every session of user (lockout, removal, role or password
// change) and returns how many there were.
func (s *sessions) endUser(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, ss := range s.byKey {
		if ss.User == user {
			delete(s.byKey, k)
			n++
		}
	}
	return n
}

func (s *sessions) count(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ss := range s.byKey {
		if ss.User == user {
			n++
		}
	}
	return n
}

func constantEqual(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// pendingLogins hold the password step of a login with a second factor:
// the browser gets a random token for the code form, valid five minutes,
// once.
type pendingLogins struct {
	mu  sync.Mutex
	m   map[string]pendingLogin
	now func() time.Time
}

type pendingLogin struct {
	user    string
	expires time.Time
}

func (p *pendingLogins) add(user string) string {
	t := randomToken(24)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for k, v := range p.m {
		if now.After(v.expires) {
			delete(p.m, k)
		}
	}
	p.m[tokenKey(t)] = pendingLogin{user: user, expires: now.Add(5 * time.Minute)}
	return t
}

// take returns the user of a pending login and consumes it.
func (p *pendingLogins) take(token string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := tokenKey(token)
	v, ok := p.m[k]
	delete(p.m, k)
	if !ok || p.now().After(v.expires) {
		return "", false
	}
	return v.user, true
}
