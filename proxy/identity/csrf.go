package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// CSRF issues time-limited tokens for the proxy's own endpoints (block page
// "continue", step-up resume): an HMAC over host, purpose and expiry.
type CSRF struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// NewCSRF keys tokens with secret (32+ bytes recommended); they live 30
// minutes.
func NewCSRF(secret []byte) *CSRF {
	k := hmac.New(sha256.New, secret)
	k.Write([]byte("portcullis csrf v1"))
	return &CSRF{key: k.Sum(nil), ttl: 30 * time.Minute, now: time.Now}
}

func (c *CSRF) mac(host, purpose string, exp int64) []byte {
	m := hmac.New(sha256.New, c.key)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(exp))
	m.Write(b[:])
	m.Write([]byte(host + "\x00" + purpose))
	return m.Sum(nil)
}

// Token returns a token valid for host and purpose.
func (c *CSRF) Token(host, purpose string) string {
	exp := c.now().Add(c.ttl).Unix()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(exp))
	return base64.RawURLEncoding.EncodeToString(append(b[:], c.mac(host, purpose, exp)...))
}

// Valid checks a token for host and purpose, and that it has not expired.
func (c *CSRF) Valid(host, purpose, token string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 8+sha256.Size {
		return false
	}
	exp := int64(binary.BigEndian.Uint64(raw[:8]))
	if c.now().Unix() >= exp {
		return false
	}
	return hmac.Equal(raw[8:], c.mac(host, purpose, exp))
}
