package packaging

import (
	"testing"

	"github.com/portcullis-gw/portcullis/internal/deptest"
)

func TestImportBoundaries(t *testing.T) { deptest.Check(t) }
