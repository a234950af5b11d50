package activity

import (
	"fmt"
	"time"
)

// Durability says what Emit does when the store cannot take an event.
type Durability int

const (
	// AuditStrict refuses: Emit returns ErrStoreUnavailable and the caller
	// refuses the new session, so no traffic runs unlogged.
	AuditStrict Durability = iota
	// BestEffort drops the event, counts it in Stats.Dropped and returns nil,
	// so traffic keeps flowing while the operator is alarmed by the counter.
	BestEffort
)

func (d Durability) String() string {
	switch d {
	case AuditStrict:
		return "audit-strict"
	case BestEffort:
		return "best-effort"
	}
	return fmt.Sprintf("durability(%d)", int(d))
}

// Options tunes a Store. The zero value is usable: every zero field takes the
// default documented on it.
type Options struct {
	Durability Durability

	// QueueSize bounds the events waiting for the writer (default 65536,
	// about a second of peak load; roughly 400 bytes each plus strings).
	QueueSize int
	// FlushInterval bounds how long the writer lingers to grow a group of
	// events no one waits on (0, the default: it does not linger). The
	// writer commits as soon as it is idle, so under load a group is
	// whatever arrived during the previous fsync and the fsync rate adapts
	// by itself; lingering only trades latency for fewer fsyncs at low
	// rates. A durable waiter (EmitDurable) or a full group ends it early.
	FlushInterval time.Duration
	// MaxBatch bounds a group (default 4096 events): the transaction size
	// and the writer's memory beyond the queue.
	MaxBatch int

	// MaxAge deletes events older than this (0: keep forever).
	MaxAge time.Duration
	// MaxBytes deletes the oldest events while the database uses more than
	// this many bytes (0: no limit). The WAL file is not counted.
	MaxBytes int64
	// PruneInterval is how often retention runs in the background when
	// MaxAge or MaxBytes is set (default 1 minute).
	PruneInterval time.Duration

	// beforeCommit, when set (by tests only), runs in the writer goroutine
	// before every group commit; a test blocks in it to stall the writer.
	beforeCommit func()
	// noFullText and noRollups (benchmarks only) open a store without the
	// full-text index or the rollups, to measure what each costs.
	noFullText, noRollups bool
	// ftsBatch (tests only) overrides defaultFTSBatch.
	ftsBatch int
	// densityWindow (tests only) overrides defaultDensityWindow.
	densityWindow int
	// writerCacheKiB (benchmarks only) overrides the writer's page cache
	// size (writeDSN).
	writerCacheKiB int
}

func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = 65536
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 4096
	}
	if o.PruneInterval <= 0 {
		o.PruneInterval = time.Minute
	}
	return o
}
