package console

import (
	"testing"

	"github.com/portcullis-gw/portcullis/internal/deptest"
)

// The console may use the policy engine and the activity store, nothing
// else of ours: the appliance wires it.
func TestImportBoundaries(t *testing.T) { deptest.Check(t, "policy", "appliance/activity") }
