package activity

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of the pipeline's counters for the appliance's metrics
// and alarms. Counters only grow for the life of the Store.
type Stats struct {
	Queued      uint64 // events Emit accepted
	Written     uint64 // events committed to disk
	Commits     uint64 // successful group commits (one fsync each)
	Dropped     uint64 // BestEffort: events discarded because the queue was full
	Refused     uint64 // AuditStrict: Emit calls answered ErrStoreUnavailable
	Lost        uint64 // accepted events given up on at Close (disk kept failing)
	WriteErrors uint64 // failed group commits (each is retried)
	Pruned      uint64 // events deleted by retention
	// PrunedUndelivered counts pruned events some sink had not yet been
	// advanced past: retention outran an exporter.
	PrunedUndelivered uint64
	PruneErrors       uint64

	QueueDepth    int
	QueueCapacity int
	// LastCommitLag is how long the oldest event of the last committed group
	// waited between Emit and the end of its fsync.
	LastCommitLag  time.Duration
	LastCommitSize int
	// Healthy is false from a failed group commit until the next one succeeds.
	Healthy bool
}

type counters struct {
	queued, written, commits, dropped, refused, lost, writeErrors atomic.Uint64
	pruned, prunedUndelivered, pruneErrors                        atomic.Uint64
	lastLag                                                       atomic.Int64
	lastSize                                                      atomic.Int64
	capacity                                                      int
}

// Stats returns the current counters. It is cheap enough to call on every
// metrics scrape.
func (s *Store) Stats() Stats {
	c := &s.stats
	return Stats{
		Queued:            c.queued.Load(),
		Written:           c.written.Load(),
		Commits:           c.commits.Load(),
		Dropped:           c.dropped.Load(),
		Refused:           c.refused.Load(),
		Lost:              c.lost.Load(),
		WriteErrors:       c.writeErrors.Load(),
		Pruned:            c.pruned.Load(),
		PrunedUndelivered: c.prunedUndelivered.Load(),
		PruneErrors:       c.pruneErrors.Load(),
		QueueDepth:        int(s.depthNow.Load()),
		QueueCapacity:     c.capacity,
		LastCommitLag:     time.Duration(c.lastLag.Load()),
		LastCommitSize:    int(c.lastSize.Load()),
		Healthy:           s.healthy.Load(),
	}
}
