package console

import (
	"net/url"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP as authenticator apps do it: RFC 6238, SHA-1, 6 digits, 30 s, one
// step of clock skew either way.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

func newTOTPSecret() string {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "Portcullis", AccountName: "console", SecretSize: 20})
	if err != nil {
		// Generate fails only on bad options, which are constants here.
		return ""
	}
	return key.Secret()
}

// totpURI is the otpauth:// URI an authenticator app imports.
func totpURI(secret, account string) string {
	v := url.Values{"secret": {secret}, "issuer": {"Portcullis"}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}
	return (&url.URL{Scheme: "otpauth", Host: "totp", Path: "/Portcullis:" + account, RawQuery: v.Encode()}).String()
}

// validateTOTP reports whether code is valid for secret at now, and the
// time step it belongs to (for replay protection).
func validateTOTP(secret, code string, now time.Time) (int64, bool) {
	if len(code) != 6 || secret == "" {
		return 0, false
	}
	step := now.Unix() / 30
	for d := int64(-1); d <= 1; d++ {
		at := time.Unix((step+d)*30, 0)
		want, err := totp.GenerateCodeCustom(secret, at, totpOpts)
		if err == nil && constantEqual(want, code) {
			return step + d, true
		}
	}
	return 0, false
}
