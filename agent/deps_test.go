package agent

import (
	"testing"

	"github.com/portcullis-gw/portcullis/internal/deptest"
)

// The agent imports nothing of ours: the appliance hands it sockets, never
// proxy types.
func TestImportBoundaries(t *testing.T) { deptest.Check(t) }
