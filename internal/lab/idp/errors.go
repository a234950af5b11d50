package idp

import "fmt"

// errorf prefixes every error of this package so that a failing lab says
// which component broke.
func errorf(format string, args ...any) error {
	return fmt.Errorf("lab idp: "+format, args...)
}
