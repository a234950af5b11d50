package identity

import (
	"testing"

	"github.com/portcullis-gw/portcullis/internal/deptest"
)

// The identity package uses nothing of ours, only the standard library and
// its SAML / OIDC libraries.
func TestImportBoundaries(t *testing.T) { deptest.Check(t) }
