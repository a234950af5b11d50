package rewrite

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/url"
	"regexp"
	"strings"

	"github.com/klauspost/compress/flate"
)

// maxSAMLMessage bounds an inflated SAML message; larger ones are left
// alone (a deflate bomb must not cost memory).
const maxSAMLMessage = 1 << 20

// xmlSignature matches a <Signature> element in any namespace prefix.
var xmlSignature = regexp.MustCompile(`<([A-Za-z_][\w.-]*:)?Signature[\s>/]`)

// SAMLQueryToOrigin maps an unsigned SAMLRequest of the HTTP-Redirect
// binding (base64 of deflated XML in the query) back to origin URLs: ACS
// URL, Destination, Issuer and any other URL of a suffixed host. A query
// with a Signature or SigAlg parameter, a message holding a <Signature>
// element, or one that does not decode is returned untouched.
func SAMLQueryToOrigin(rawQuery string, m Mapper) string {
	if isSignedRedirect(rawQuery) {
		return rawQuery
	}
	parts := strings.Split(rawQuery, "&")
	changed := false
	for i, p := range parts {
		k, v, _ := strings.Cut(p, "=")
		if k != "SAMLRequest" {
			continue
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(dv)
		if err != nil {
			continue
		}
		xml, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw)), maxSAMLMessage+1))
		if err != nil || len(xml) > maxSAMLMessage {
			continue
		}
		out, ok := samlToOrigin(xml, m)
		if !ok {
			continue
		}
		var z bytes.Buffer
		zw, _ := flate.NewWriter(&z, flate.BestCompression)
		_, _ = zw.Write(out)
		_ = zw.Close()
		parts[i] = k + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(z.Bytes()))
		changed = true
	}
	if !changed {
		return rawQuery
	}
	return strings.Join(parts, "&")
}

// SAMLFormValueToOrigin does what SAMLQueryToOrigin does for the decoded
// value of a SAMLRequest form field of the HTTP-POST binding (base64 of the
// XML). Signed or undecodable messages are returned untouched.
func SAMLFormValueToOrigin(value string, m Mapper) string {
	if len(value) > 2*maxSAMLMessage {
		return value
	}
	xml, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return value
	}
	out, ok := samlToOrigin(xml, m)
	if !ok {
		return value
	}
	return base64.StdEncoding.EncodeToString(out)
}

// samlToOrigin maps the URLs inside an unsigned SAML message.
func samlToOrigin(xml []byte, m Mapper) ([]byte, bool) {
	if xmlSignature.Match(xml) {
		return nil, false
	}
	out, _ := scanText(nil, xml, 0, true, newHostCache(originFunc(m)), false)
	if bytes.Equal(out, xml) {
		return nil, false
	}
	return out, true
}
