package console

import (
	"context"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/lab/browser"
)

// The console's Chromium tests share these: a full-page screenshot and an
// axe-core run that reports serious and critical violations.

// screenshot writes the tab's page to dir/name.png.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	browser.Screenshot(t, ctx, dir, name)
}

// axeCheck injects axe-core into the tab's page and fails the test for
// each serious or critical violation.
func axeCheck(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	browser.Axe(t, ctx, axeSource, page)
}
