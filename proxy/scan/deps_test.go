package scan

import (
	"testing"

	"github.com/portcullis-gw/portcullis/internal/deptest"
)

// The scanners may use the policy package and nothing else of ours.
func TestImportBoundaries(t *testing.T) { deptest.Check(t, "policy") }
