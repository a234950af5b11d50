package activity

import (
	"context"
	"errors"
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
	// durable, when set, receives the outcome of the group commit that
	// holds the event (nil once it is fsynced).
	durable chan error
}

// Ticket is a durable emission's claim on the outcome of its group commit.
type Ticket struct{ ch chan error }

// EmitDurable is Emit for a caller that will wait for the event to be on
// disk (WaitDurable). A group holding such an event is committed as soon as
// the queue has been drained instead of waiting out FlushInterval: the
// group is whatever arrived while the previous commit ran. In BestEffort
// mode a full queue is an error here too: a caller asking for durability
// must not be told a dropped event is safe.
func (s *Store) EmitDurable(ev Event) (Ticket, error) {
	t := Ticket{ch: make(chan error, 1)}
	return t, s.emit(ev, t.ch)
}

// WaitDurable blocks until the event of t is fsynced (nil), its commit was
// given up (the error), or ctx ends.
func (s *Store) WaitDurable(ctx context.Context, t Ticket) error {
	if t.ch == nil {
		return errors.New("activity: wait on a ticket that was never issued")
	}
	select {
	case err := <-t.ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("activity: event not durable yet: %w", ctx.Err())
	}
}

// Emit hands ev to the writer and returns without touching the disk. It
// assigns ev.ID (UUIDv7) and ev.Time when they are zero.
//
// In AuditStrict mode it returns ErrStoreUnavailable when the queue is full
// or the last group commit failed: the caller must refuse the session. In
// BestEffort mode it drops the event, counts it in Stats.Dropped and returns
// nil. After Close it returns ErrClosed.
func (s *Store) Emit(ev Event) error { return s.emit(ev, nil) }

func (s *Store) emit(ev Event, durable chan error) error {
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
	case s.queue <- queued{ev: ev, enqueued: now, durable: durable}:
		s.stats.queued.Add(1)
		return nil
	default:
	}
	if strict || durable != nil {
		s.stats.refused.Add(1)
		return ErrStoreUnavailable
	}
	s.stats.dropped.Add(1)
	return nil
}
