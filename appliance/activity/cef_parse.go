package activity

import (
	"errors"
	"fmt"
	"strings"
)

// CEFMessage is a CEF payload read back by ParseCEF.
type CEFMessage struct {
	Version       string
	Vendor        string
	Product       string
	DeviceVersion string
	SignatureID   string
	Name          string
	Severity      string
	// Ext maps extension keys to unescaped values; a repeated key keeps its
	// last value.
	Ext map[string]string
}

var errCEF = errors.New("bad CEF message")

// ParseCEF parses a CEF payload ("CEF:Version|Vendor|…|Severity|ext"). An
// extension value runs to the last space before the next unescaped '=',
// which is how CEF delimits values that may themselves contain spaces.
func ParseCEF(s string) (*CEFMessage, error) {
	rest, ok := strings.CutPrefix(s, "CEF:")
	if !ok {
		return nil, fmt.Errorf("%w: missing CEF: prefix", errCEF)
	}
	var hdr [7]string
	for k := range hdr {
		var b strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '|'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) && (rest[i+1] == '\\' || rest[i+1] == '|') {
				i++
			}
			b.WriteByte(rest[i])
		}
		if i == len(rest) {
			return nil, fmt.Errorf("%w: %d header fields, want 7", errCEF, k)
		}
		hdr[k] = b.String()
		rest = rest[i+1:]
	}
	ext, err := parseCEFExt(rest)
	if err != nil {
		return nil, err
	}
	return &CEFMessage{hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5], hdr[6], ext}, nil
}

func parseCEFExt(s string) (map[string]string, error) {
	ext := map[string]string{}
	if strings.TrimLeft(s, " ") == "" {
		return ext, nil
	}
	var eqs []int // unescaped '='
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '=':
			eqs = append(eqs, i)
		}
	}
	if len(eqs) == 0 {
		return nil, fmt.Errorf("%w: extension without key=value", errCEF)
	}
	keyStart := make([]int, len(eqs))
	for k, eq := range eqs {
		if k == 0 {
			keyStart[k] = len(s) - len(strings.TrimLeft(s, " "))
		} else {
			keyStart[k] = strings.LastIndexByte(s[:eq], ' ') + 1
			if keyStart[k] <= eqs[k-1] {
				return nil, fmt.Errorf("%w: unescaped '=' in a value", errCEF)
			}
		}
		if key := s[keyStart[k]:eq]; !cefKey(key) {
			return nil, fmt.Errorf("%w: bad key %q", errCEF, key)
		}
	}
	for k, eq := range eqs {
		end := len(s)
		if k+1 < len(eqs) {
			end = keyStart[k+1] - 1 // the space before the next key
		}
		ext[s[keyStart[k]:eq]] = unescapeCEFValue(s[eq+1 : end])
	}
	return ext, nil
}

// unescapeCEFValue reverses appendCEFValue; an unknown escape is kept as is.
func unescapeCEFValue(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\\' && i+1 < len(v) {
			switch v[i+1] {
			case '\\', '=':
				c = v[i+1]
				i++
			case 'n':
				c = '\n'
				i++
			case 'r':
				c = '\r'
				i++
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// cefKey reports whether k looks like a CEF extension key (letters, digits,
// '_' and '.'), so a stray '=' in a value is reported rather than misread.
func cefKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return k != ""
}
