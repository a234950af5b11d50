package activity

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// queued is an event on its way to the writer. enqueued (with its monotonic
// clock reading) measures commit lag independently of the event's own Time,
// which the caller may have set to when the request started.
type queued struct {
	ev       Event
	enqueued time.Time
}

// Emit hands ev to the writer and returns without touching the disk. It
// assigns ev.ID (UUIDv7) and ev.Time when they are zero.
//
// In AuditStrict mode it returns ErrStoreUnavailable when the queue is full
// or the last group commit failed: the caller must refuse the session. In
// BestEffort mode it drops the event, counts it in Stats.Dropped and returns
// nil. After Close it returns ErrClosed.
func (s *Store) Emit(ev Event) error {
	now := time.Now()
	if ev.Time.IsZero() {
		ev.Time = now
	}
	if ev.ID == (uuid.UUID{}) {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("event id: %w", err)
		}
		ev.ID = id
	}
	strict := s.opt.Durability == AuditStrict

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if strict && !s.healthy.Load() {
		s.stats.refused.Add(1)
		return ErrStoreUnavailable
	}
	select {
	case s.queue <- queued{ev: ev, enqueued: now}:
		s.stats.queued.Add(1)
		return nil
	default:
	}
	if strict {
		s.stats.refused.Add(1)
		return ErrStoreUnavailable
	}
	s.stats.dropped.Add(1)
	return nil
}
