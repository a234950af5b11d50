package activity

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
)

// group is a run of queued events the writer commits in one fsynced
// transaction. Emitters append to the newest pending group (under Store.qmu)
// until it holds MaxBatch events; the writer takes the oldest. Every durable
// waiter on a group shares its done channel, so a commit wakes all of them
// with one close and no per-event allocation.
type group struct {
	events []Event
	// created is when the first event arrived (monotonic): the commit lag.
	created time.Time
	// durable is set when some event in the group has a waiter: the writer
	// then does not linger for more events.
	durable bool
	done    chan struct{}
	err     error // the commit's outcome, written before done is closed
}

// Ticket is a durable emission's claim on the outcome of its group commit.
// The zero Ticket was never issued.
type Ticket struct{ g *group }

// writer wake-up wishes, kept in Store.wake under qmu.
const (
	wakeNone   = iota // busy committing: it looks at the queue when done
	wakeAny           // idle: any new event starts a commit
	wakeUrgent        // lingering: only a durable waiter or a full group
)

// EmitDurable is Emit for a caller that will wait for the event to be on
// disk (WaitDurable). The writer commits as soon as it is idle, so the
// group a waiter joins is whatever arrived while the previous fsync ran;
// when FlushInterval makes the writer linger, a durable event cuts the
// lingering short. In BestEffort mode a full queue is an error here too: a
// caller asking for durability must not be told a dropped event is safe.
func (s *Store) EmitDurable(ev Event) (Ticket, error) {
	g, err := s.emit(ev, true)
	return Ticket{g: g}, err
}

// WaitDurable blocks until the event of t is fsynced (nil), its commit was
// given up at Close (an error wrapping ErrStoreUnavailable), or ctx ends.
func (s *Store) WaitDurable(ctx context.Context, t Ticket) error {
	if t.g == nil {
		return errors.New("activity: wait on a ticket that was never issued")
	}
	select { // settled already: answer even if ctx is done
	case <-t.g.done:
		return t.g.err
	default:
	}
	select {
	case <-t.g.done:
		return t.g.err
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
// nil; it never blocks. After Close it returns ErrClosed.
func (s *Store) Emit(ev Event) error {
	_, err := s.emit(ev, false)
	return err
}

func (s *Store) emit(ev Event, durable bool) (*group, error) {
	now := time.Now()
	if ev.Time.IsZero() {
		ev.Time = now
	}
	if ev.ID == (uuid.UUID{}) {
		ev.ID = newEventID(now)
	}
	strict := s.opt.Durability == AuditStrict

	s.qmu.Lock()
	if s.closed {
		s.qmu.Unlock()
		return nil, ErrClosed
	}
	if strict && !s.healthy.Load() {
		s.qmu.Unlock()
		s.stats.refused.Add(1)
		return nil, ErrStoreUnavailable
	}
	if s.depth >= s.opt.QueueSize {
		s.qmu.Unlock()
		if strict || durable {
			s.stats.refused.Add(1)
			return nil, ErrStoreUnavailable
		}
		s.stats.dropped.Add(1)
		return nil, nil
	}
	var g *group
	if n := len(s.pending); n > 0 && len(s.pending[n-1].events) < s.opt.MaxBatch {
		g = s.pending[n-1]
	} else {
		// The writer is behind when the newest group is full: the next
		// one will fill as well, so it is made at that size at once.
		hint := s.lastTaken
		if n > 0 {
			hint = s.opt.MaxBatch
		}
		g = s.newGroup(now, hint)
		s.pending = append(s.pending, g)
	}
	if len(g.events) == cap(g.events) {
		g.events = s.grow(g.events)
	}
	g.events = append(g.events, ev)
	g.durable = g.durable || durable
	s.depth++
	s.depthNow.Store(int64(s.depth))
	wake := s.wake == wakeAny ||
		(s.wake == wakeUrgent && (durable || len(g.events) == s.opt.MaxBatch))
	if wake {
		s.wake = wakeNone
	}
	s.qmu.Unlock()
	s.stats.queued.Add(1)
	if wake {
		select {
		case s.wakeCh <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	return g, nil
}

// Group buffers grow on demand: a group starts with room for
// groupStartEvents events (about 7 KiB) and doubles, at most to MaxBatch.
// Under the usual load a group is what arrived during one fsync (a few to a
// few hundred events); sized for a full group (MaxBatch, 1.8 MB at the
// default) every buffer cost its whole size, and the two to four buffers
// alive under load held ~4-7 MiB of heap whatever the traffic. A buffer is
// reused with the capacity it grew to, so at a steady rate the request path
// copies nothing; while groups grow, the copies add at most one move per
// event (doubling).
const (
	groupStartEvents = 16
	// spareIdleEvents is the largest buffer the pool keeps once the writer
	// has nothing to do: what a burst grew is given back when it ends.
	spareIdleEvents = 256
)

// newGroup returns an empty group, reusing an event buffer the writer gave
// back when there is one, else making one with room for hint events (the
// size of the group the writer took last, or MaxBatch while it is behind),
// at least groupStartEvents. Called with qmu held.
func (s *Store) newGroup(now time.Time, hint int) *group {
	g := &group{created: now, done: make(chan struct{})}
	size := min(max(hint, groupStartEvents), s.opt.MaxBatch, s.opt.QueueSize)
	if n := len(s.spare); n > 0 {
		g.events = s.spare[n-1]
		s.spare[n-1] = nil
		s.spare = s.spare[:n-1]
	}
	if cap(g.events) < size { // none, or one too small to be worth growing
		g.events = make([]Event, 0, size)
	}
	return g
}

// grow returns buf with twice its capacity (at most MaxBatch, which emit
// never exceeds: a full group is not appended to). Called with qmu held.
func (s *Store) grow(buf []Event) []Event {
	n := min(max(2*cap(buf), groupStartEvents), s.opt.MaxBatch)
	bigger := make([]Event, len(buf), n)
	copy(bigger, buf)
	return bigger
}

// recycle returns a committed group's event buffer for reuse. The buffers
// kept are bounded by how many groups fit in the queue, and a buffer its
// group filled to less than a quarter is let go when it is larger than a
// fresh one: groups that shrank after a burst give the burst's memory back.
//
// Only the events the group held are cleared: a spare buffer is zero past
// its length (fresh from make, or cleared up to what it held), so clearing
// it at full capacity (MaxBatch events, 1.8 MB) cost a memclr per commit
// that a group of five events did not need.
func (s *Store) recycle(g *group) {
	buf := g.events
	clear(buf) // drop references to the events' strings and slices
	g.events = nil
	if cap(buf) > groupStartEvents && 4*len(buf) < cap(buf) {
		return
	}
	s.qmu.Lock()
	if len(s.spare) < s.opt.QueueSize/max(s.opt.MaxBatch, 1)+2 {
		s.spare = append(s.spare, buf[:0])
	}
	s.qmu.Unlock()
}

// trimSpare drops the pooled buffers larger than spareIdleEvents. The
// writer calls it (qmu held) when the queue is empty and it goes to sleep.
func (s *Store) trimSpare() {
	kept := s.spare[:0]
	for _, buf := range s.spare {
		if cap(buf) <= spareIdleEvents {
			kept = append(kept, buf)
		}
	}
	clear(s.spare[len(kept):])
	s.spare = kept
}

// newEventID returns a UUIDv7 (RFC 9562 §5.7) for an event stamped at now:
// 48 bits of Unix milliseconds, then 74 random bits. The bits come from
// math/rand/v2's runtime generator rather than crypto/rand: an event id
// must be unique, not unguessable, and the getrandom(2) call per event was
// a third of Emit's cost.
func newEventID(now time.Time) uuid.UUID {
	var id uuid.UUID
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint64(id[0:8], ms<<16|rand.Uint64()&0xffff)
	binary.BigEndian.PutUint64(id[8:16], rand.Uint64())
	id[6] = id[6]&0x0f | 0x70 // version 7
	id[8] = id[8]&0x3f | 0x80 // variant 10
	return id
}
