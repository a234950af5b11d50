package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes written "512", "64KiB", "10MB" or "2GiB" in
// policy files. Decimal (KB, MB, GB) and binary (KiB, MiB, GiB) units are
// both accepted because admins copy sizes from both kinds of tools.
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// UnmarshalText parses a size.
func (s *ByteSize) UnmarshalText(b []byte) error {
	t := strings.TrimSpace(string(b))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size (write e.g. 512KiB, 10MB, 2GiB or a byte count)", string(b))
	}
	*s = ByteSize(n * mult)
	return nil
}

// MarshalText writes the largest binary unit that divides the size exactly,
// so serialising and parsing again gives the same number.
func (s ByteSize) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s ByteSize) String() string {
	n := int64(s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// IsZero lets omitempty drop unset sizes.
func (s ByteSize) IsZero() bool { return s == 0 }
