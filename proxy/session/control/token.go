package control

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// macKey signs one kind of token. Each kind has its own key derived from
// the appliance secret, so a token of one kind is never valid as another
// even when the bound values happen to be equal.
type macKey []byte

func deriveKey(secret []byte, purpose string) (macKey, error) {
	return hkdf.Key(sha256.New, secret, nil, "portcullis control "+purpose+" v1", 32)
}

// sum is the HMAC of the bound values and the payload. Every value is
// length-prefixed, so ("ab", "c") and ("a", "bc") differ.
func (k macKey) sum(payload []byte, bind []string) []byte {
	m := hmac.New(sha256.New, k)
	var n [4]byte
	for _, b := range bind {
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		m.Write(n[:])
		m.Write([]byte(b))
	}
	m.Write(payload)
	return m.Sum(nil)
}

// seal returns base64url(payload || HMAC(bind, payload)).
func (k macKey) seal(payload []byte, bind ...string) string {
	return base64.RawURLEncoding.EncodeToString(append(payload[:len(payload):len(payload)], k.sum(payload, bind)...))
}

// open checks a sealed token and returns its payload. maxLen bounds the
// token's text before it is decoded.
func (k macKey) open(token string, maxLen int, bind ...string) ([]byte, bool) {
	if len(token) > maxLen {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < sha256.Size {
		return nil, false
	}
	payload, mac := raw[:len(raw)-sha256.Size], raw[len(raw)-sha256.Size:]
	return payload, hmac.Equal(mac, k.sum(payload, bind))
}

// sealUntil seals extra with an expiry in front of it.
func (k macKey) sealUntil(exp time.Time, extra []byte, bind ...string) string {
	p := make([]byte, 8, 8+len(extra))
	binary.BigEndian.PutUint64(p, uint64(exp.Unix()))
	return k.seal(append(p, extra...), bind...)
}

// openUntil opens a token of sealUntil that has not expired at now, and
// returns its extra bytes.
func (k macKey) openUntil(token string, maxLen int, now time.Time, bind ...string) ([]byte, bool) {
	p, ok := k.open(token, maxLen, bind...)
	if !ok || len(p) < 8 {
		return nil, false
	}
	if now.Unix() >= int64(binary.BigEndian.Uint64(p)) {
		return nil, false
	}
	return p[8:], true
}
