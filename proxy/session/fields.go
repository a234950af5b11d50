package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/url"
	"strconv"
	"strings"

	"github.com/portcullis-gw/portcullis/policy"
)

// Field limits: a body is a bounded set of fields, whatever its size.
const (
	maxFields     = 10000
	maxFieldDepth = 64
)

// errFields: the body is not a well-formed instance of its content type.
var errFields = errors.New("malformed body fields")

// Fields are the body fields of a request as a policy.FieldGetter.
//
// Names: JSON object keys joined with "." from the top (a.b.c), array
// elements by index (items.0.name); a field that is an object or array has
// its raw JSON text as value. URL-encoded and multipart form fields keep the
// name as written (do[save], files[]). A repeated name yields its last
// value, as PHP and JSON.parse read it; Text returns every value, so
// content inspection sees all of them. Names absent from the body fall back
// to the URL's query parameters (PHP's $_REQUEST, which DokuWiki reads).
type Fields struct {
	vals  map[string][]string
	query url.Values
}

var _ policy.FieldGetter = (*Fields)(nil)

// Field is the last value of name.
func (f *Fields) Field(name string) (string, bool) {
	if f == nil {
		return "", false
	}
	if v, ok := f.vals[name]; ok && len(v) > 0 {
		return v[len(v)-1], true
	}
	if v, ok := f.query[name]; ok && len(v) > 0 {
		return v[len(v)-1], true
	}
	return "", false
}

// Text writes every value of name (body, then query), newline-separated.
func (f *Fields) Text(w io.Writer, name string) {
	if f == nil {
		return
	}
	for _, v := range f.vals[name] {
		_, _ = io.WriteString(w, v)
		_, _ = io.WriteString(w, "\n")
	}
	for _, v := range f.query[name] {
		_, _ = io.WriteString(w, v)
		_, _ = io.WriteString(w, "\n")
	}
}

// Len is the number of distinct body field names.
func (f *Fields) Len() int { return len(f.vals) }

func (f *Fields) add(name, v string) error {
	if f.vals == nil {
		f.vals = map[string][]string{}
	}
	if _, ok := f.vals[name]; !ok && len(f.vals) >= maxFields {
		return errFields
	}
	f.vals[name] = append(f.vals[name], v)
	return nil
}

// QueryFields are the URL query parameters alone, parsed leniently.
func QueryFields(rawQuery string) *Fields {
	f := &Fields{}
	if rawQuery != "" {
		f.query = lenientForm(rawQuery)
	}
	return f
}

// ReadFields parses body as the given content type: JSON
// (application/json, +json), application/x-www-form-urlencoded, or the
// text fields of multipart/form-data (file parts are skipped). Other types
// give no fields and no error. A body that does not parse is errFields
// wrapped: the caller decides the request as "could not be inspected".
func ReadFields(contentType string, body []byte, rawQuery string) (*Fields, error) {
	f := QueryFields(rawQuery)
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return f, nil
	}
	switch {
	case mt == "application/x-www-form-urlencoded":
		for k, vs := range lenientForm(string(body)) {
			for _, v := range vs {
				if err := f.add(k, v); err != nil {
					return f, err
				}
			}
		}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		if err := jsonFields(f, string(body)); err != nil {
			return f, err
		}
	case mt == "multipart/form-data":
		b := params["boundary"]
		if b == "" {
			return f, errFields
		}
		err := WalkMultipart(bytes.NewReader(body), b, PartLimits{}, func(p *Part) error {
			if p.FileName != "" {
				return nil
			}
			var sb strings.Builder
			if _, err := io.Copy(&sb, p); err != nil {
				return err
			}
			return f.add(p.FormName, sb.String())
		})
		if err != nil {
			return f, err
		}
	}
	return f, nil
}

// lenientForm splits on '&' only (as PHP does) and keeps a value whose
// escapes are broken as written instead of dropping it.
func lenientForm(s string) url.Values {
	out := url.Values{}
	n := 0
	for part := range strings.SplitSeq(s, "&") {
		if part == "" {
			continue
		}
		if n++; n > maxFields {
			break
		}
		k, v, _ := strings.Cut(part, "=")
		out[unescape(k)] = append(out[unescape(k)], unescape(v))
	}
	return out
}

func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// jsonFields flattens a JSON document. Values are substrings of src (raw
// text for objects and arrays), so the fields cost no more than the body.
func jsonFields(f *Fields, src string) error {
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	var walk func(prefix string, depth int) error
	walk = func(prefix string, depth int) error {
		if depth > maxFieldDepth {
			return errFields
		}
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return errFields
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				for dec.More() {
					kt, err := dec.Token()
					if err != nil {
						return errFields
					}
					k, _ := kt.(string)
					if err := walk(join(prefix, k), depth+1); err != nil {
						return err
					}
				}
			case '[':
				for i := 0; dec.More(); i++ {
					if err := walk(join(prefix, strconv.Itoa(i)), depth+1); err != nil {
						return err
					}
				}
			default:
				return errFields
			}
			if _, err := dec.Token(); err != nil {
				return errFields
			}
			if prefix != "" {
				raw := strings.TrimLeft(src[start:dec.InputOffset()], " \t\r\n,:")
				return f.add(prefix, raw)
			}
			return nil
		case string:
			return f.add(prefix, t)
		case json.Number:
			return f.add(prefix, t.String())
		case bool:
			return f.add(prefix, strconv.FormatBool(t))
		case nil:
			return f.add(prefix, "")
		}
		return errFields
	}
	if err := walk("", 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errFields
	}
	return nil
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}
