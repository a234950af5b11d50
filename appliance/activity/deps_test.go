package activity

import (
	"testing"

	"github.com/portcullis-gw/portcullis/internal/deptest"
)

// The activity store is a leaf: the proxy and the CLI may use it without
// depending on the appliance.
func TestImportBoundaries(t *testing.T) { deptest.Check(t) }
