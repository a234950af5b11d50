package dlp

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Built-in detector ids; their indexes in every Set are fixed.
const (
	CreditCard = "credit_card"
	IBAN       = "iban"
	USSSN      = "us_ssn"
	Email      = "email"
	SWIFTBIC   = "swift_bic"
)

// Indexes of the built-in detectors in a Set and a Result.
const (
	IdxCreditCard = iota
	IdxIBAN
	IdxUSSSN
	IdxEmail
	IdxSWIFTBIC
	numBuiltin
)

// BuiltinIDs lists the built-in detectors in index order.
var BuiltinIDs = [numBuiltin]string{CreditCard, IBAN, USSSN, Email, SWIFTBIC}

var builtinNames = [numBuiltin]string{"Payment card number", "IBAN", "US social security number", "E-mail address", "SWIFT/BIC code"}

// Sentinel errors of this package.
var (
	// ErrBadDetector: a custom detector definition is unusable.
	ErrBadDetector = errors.New("bad detector")
	// ErrFinished: Write after Result.
	ErrFinished = errors.New("inspector already finished")
)

// MaxCustomMatch bounds the length of a custom (regex or keyword) match that
// is guaranteed to be found across a write boundary.
const MaxCustomMatch = lookAhead

// Custom is an admin-defined detector: a regular expression (RE2 syntax) or
// a keyword dictionary (whole words, ASCII case-insensitive unless
// CaseSensitive).
type Custom struct {
	ID            string
	Name          string
	Regex         string
	Keywords      []string
	CaseSensitive bool
}

type custom struct {
	re       *regexp.Regexp
	keywords [][]byte // lowercased unless caseSensitive
	caseSens bool
}

// Set is an immutable list of detectors: the built-ins first, then the
// custom ones in the order given. Safe for concurrent use.
type Set struct {
	ids     []string
	names   []string
	customs []custom
}

// NewSet compiles the custom detectors.
func NewSet(customs []Custom) (*Set, error) {
	s := &Set{ids: append([]string(nil), BuiltinIDs[:]...), names: append([]string(nil), builtinNames[:]...)}
	for _, c := range customs {
		if s.Index(c.ID) >= 0 {
			return nil, fmt.Errorf("%w: detector %q defined twice", ErrBadDetector, c.ID)
		}
		var cc custom
		switch {
		case c.Regex != "" && len(c.Keywords) > 0:
			return nil, fmt.Errorf("%w: detector %q has both a regex and keywords", ErrBadDetector, c.ID)
		case c.Regex != "":
			re, err := regexp.Compile(c.Regex)
			if err != nil {
				return nil, fmt.Errorf("%w: detector %q: %v", ErrBadDetector, c.ID, err)
			}
			if re.MatchString("") {
				return nil, fmt.Errorf("%w: detector %q: the regex matches the empty string", ErrBadDetector, c.ID)
			}
			cc.re = re
		case len(c.Keywords) > 0:
			cc.caseSens = c.CaseSensitive
			for _, k := range c.Keywords {
				k = strings.TrimSpace(k)
				if k == "" || len(k) > MaxCustomMatch {
					return nil, fmt.Errorf("%w: detector %q: keyword %q is empty or longer than %d bytes", ErrBadDetector, c.ID, k, MaxCustomMatch)
				}
				if !cc.caseSens {
					k = strings.ToLower(k)
				}
				cc.keywords = append(cc.keywords, []byte(k))
			}
		default:
			return nil, fmt.Errorf("%w: detector %q has neither a regex nor keywords", ErrBadDetector, c.ID)
		}
		name := c.Name
		if name == "" {
			name = c.ID
		}
		s.ids = append(s.ids, c.ID)
		s.names = append(s.names, name)
		s.customs = append(s.customs, cc)
	}
	return s, nil
}

// Len is the number of detectors.
func (s *Set) Len() int { return len(s.ids) }

// ID is detector i's id.
func (s *Set) ID(i int) string { return s.ids[i] }

// Name is detector i's display name.
func (s *Set) Name(i int) string { return s.names[i] }

// Index returns the index of id, or -1.
func (s *Set) Index(id string) int {
	for i, x := range s.ids {
		if x == id {
			return i
		}
	}
	return -1
}

// IsBuiltin reports whether id names a built-in detector.
func IsBuiltin(id string) bool {
	for _, b := range BuiltinIDs {
		if b == id {
			return true
		}
	}
	return false
}
