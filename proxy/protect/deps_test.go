package protect

import (
	"testing"

	"github.com/portcullis-gw/portcullis/internal/deptest"
)

// The protect transforms use policy/filetype (types, limits, labels) and
// pdfcpu; nothing else of ours.
func TestImportBoundaries(t *testing.T) { deptest.Check(t, "policy") }
