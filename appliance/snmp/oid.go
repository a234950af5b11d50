package snmp

import (
	"fmt"
	"strconv"
	"strings"
)

// OID is an object identifier as a list of sub-identifiers.
type OID []uint32

// EnterpriseRoot is the PORTCULLIS-MIB subtree (portcullisMIB in
// mibs/PORTCULLIS-MIB.txt). 32473 is not a Portcullis registration: it is
// the IANA example enterprise number reserved for documentation (RFC 5612),
// a deliberately unregistered placeholder. Once a private enterprise number
// is assigned, change it here and in the MIB's MODULE-IDENTITY; TestMIBMatchesCode
// fails while the two differ.
var EnterpriseRoot = OID{1, 3, 6, 1, 4, 1, 32473}

// ParseOID parses dotted notation with or without a leading dot.
func ParseOID(s string) (OID, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), ".")
	if s == "" {
		return OID{}, nil
	}
	parts := strings.Split(s, ".")
	o := make(OID, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("snmp: bad OID %q: %w", s, err)
		}
		o = append(o, uint32(n))
	}
	return o, nil
}

// MustOID is ParseOID for constants in code; it panics on a malformed literal,
// which is a programming error, never input-driven.
func MustOID(s string) OID {
	o, err := ParseOID(s)
	if err != nil {
		panic(err)
	}
	return o
}

func (o OID) String() string {
	var b strings.Builder
	for i, n := range o {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatUint(uint64(n), 10))
	}
	return b.String()
}

// Compare orders OIDs lexicographically, as SNMP walks them.
func (o OID) Compare(p OID) int {
	for i := 0; i < len(o) && i < len(p); i++ {
		switch {
		case o[i] < p[i]:
			return -1
		case o[i] > p[i]:
			return 1
		}
	}
	switch {
	case len(o) < len(p):
		return -1
	case len(o) > len(p):
		return 1
	}
	return 0
}

// HasPrefix reports whether p is o or an ancestor of o.
func (o OID) HasPrefix(p OID) bool {
	return len(o) >= len(p) && o[:len(p)].Compare(p) == 0
}

// Append returns a new OID o.sub... without aliasing o's backing array.
func (o OID) Append(sub ...uint32) OID {
	r := make(OID, 0, len(o)+len(sub))
	return append(append(r, o...), sub...)
}
