package policy

import "unsafe"

// unsafeString views b as a string without copying. Only for values that
// do not outlive b's stack frame (matching a lower-cased name on the hot
// path, where a copy would be the only allocation of a request).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
