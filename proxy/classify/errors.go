package classify

import (
	"errors"
	"fmt"
)

// ErrInvalidData is matched (errors.Is) by every error Load returns for the
// data file's content, as opposed to failing to read it. The previous
// classifier stays in use: a bad replacement file never half-applies.
var ErrInvalidData = errors.New("invalid client classification data")

// DataError is one problem in the data file, at a line and column (1-based;
// 0 when the problem is the file as a whole). Load joins up to
// maxDataErrors of them.
type DataError struct {
	Line, Column int
	Msg          string
}

func (e *DataError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg)
}

func (e *DataError) Unwrap() error { return ErrInvalidData }

var _ error = (*DataError)(nil)
