package activity

import "errors"

// Sentinel errors. Errors returned by this package wrap at most one of these,
// so callers can branch with errors.Is; anything else is an I/O or SQLite
// failure reported with short context.
var (
	// ErrStoreUnavailable: in AuditStrict mode the store cannot take the
	// event (queue full, or the last group commit failed). The caller must
	// refuse the new session rather than let it run unlogged. Close also
	// wraps it when accepted events could not be written.
	ErrStoreUnavailable = errors.New("activity store unavailable")
	// ErrClosed: the store was closed; nothing more is accepted.
	ErrClosed = errors.New("activity store closed")
	// ErrBadQuery: a search query is inconsistent (e.g. From after To).
	ErrBadQuery = errors.New("bad activity query")
	// ErrBadPageToken: Query.After is not a token this package produced.
	ErrBadPageToken = errors.New("bad page token")
	// ErrBadCursor: an empty sink name, or a sink cursor moved past the last
	// stored event.
	ErrBadCursor = errors.New("bad sink cursor")
)
