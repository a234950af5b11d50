package appliance

import (
	"context"
	"time"
)

// undoStart releases what a failed New had built, in reverse order of
// creation: the proxy's own goroutine (Run closes it otherwise), then the
// listeners and everything else closeAll releases. The datapath, attached
// last, has undone itself if anything after it failed.
func (a *Appliance) undoStart() {
	if a.proxy != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.proxy.Close(ctx)
		cancel()
	}
	a.closeAll()
}
