package rewrite

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// MaxFormField bounds one name=value field of a form body held by
// FormBody; a longer field fails with ErrFieldTooLarge.
const MaxFormField = 1 << 20

// Query maps URL-valued parameters whose host is a suffixed name back to
// the origin (SAML RelayState, OIDC redirect_uri, post_logout_redirect_uri,
// any other parameter that is a URL). Other parameters keep their exact
// bytes. A query carrying a SAML HTTP-Redirect signature (Signature and
// SigAlg) is returned untouched: its parameters are signed octets.
func Query(rawQuery string, m Mapper) string {
	if rawQuery == "" || isSignedRedirect(rawQuery) {
		return rawQuery
	}
	f := originFunc(m)
	parts := strings.Split(rawQuery, "&")
	changed := false
	for i, p := range parts {
		if n, ok := mapPair(p, f); ok {
			parts[i], changed = n, true
		}
	}
	if !changed {
		return rawQuery
	}
	return strings.Join(parts, "&")
}

// isSignedRedirect reports a SAML HTTP-Redirect binding signature.
func isSignedRedirect(rawQuery string) bool {
	sig, alg := false, false
	for _, p := range strings.Split(rawQuery, "&") {
		k, _, _ := strings.Cut(p, "=")
		switch k {
		case "Signature":
			sig = true
		case "SigAlg":
			alg = true
		}
	}
	return sig || alg
}

// mapPair maps the value of one name=value pair when it is a URL of a
// suffixed host.
func mapPair(p string, f hostFunc) (string, bool) {
	k, v, ok := strings.Cut(p, "=")
	if !ok || v == "" {
		return "", false
	}
	dv, err := url.QueryUnescape(v)
	if err != nil {
		return "", false
	}
	n, ok := mapURL(dv, f)
	if !ok {
		return "", false
	}
	return k + "=" + url.QueryEscape(n), true
}

// FormBody copies an application/x-www-form-urlencoded body from src to
// dst, one field at a time, mapping URL-valued fields of suffixed hosts
// back to the origin and an unsigned SAMLRequest (HTTP-POST binding)
// through SAMLFormValueToOrigin. Memory is bounded by MaxFormField per
// field; a longer field fails with ErrFieldTooLarge (bytes before it have
// been written).
func FormBody(dst io.Writer, src io.Reader, m Mapper) error {
	f := originFunc(m)
	br := bufio.NewReaderSize(src, 32<<10)
	var field []byte
	for {
		chunk, err := br.ReadSlice('&')
		if len(field)+len(chunk) > MaxFormField {
			return fmt.Errorf("%w: a field is longer than %d bytes", ErrFieldTooLarge, MaxFormField)
		}
		field = append(field, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("form body: read: %w", err)
		}
		if len(field) > 0 {
			if werr := writeFormField(dst, field, m, f); werr != nil {
				return werr
			}
		}
		field = field[:0]
		if err == io.EOF {
			return nil
		}
	}
}

func writeFormField(dst io.Writer, field []byte, m Mapper, f hostFunc) error {
	sep := ""
	p := string(field)
	if strings.HasSuffix(p, "&") {
		p, sep = p[:len(p)-1], "&"
	}
	k, v, _ := strings.Cut(p, "=")
	if k == "SAMLRequest" {
		if dv, err := url.QueryUnescape(v); err == nil {
			if n := SAMLFormValueToOrigin(dv, m); n != dv {
				p = k + "=" + url.QueryEscape(n)
			}
		}
	} else if n, ok := mapPair(p, f); ok {
		p = n
	}
	if _, err := io.WriteString(dst, p+sep); err != nil {
		return fmt.Errorf("form body: write: %w", err)
	}
	return nil
}
