package activity

import (
	"fmt"
	"time"
)

// closeAttempts bounds the retries of a failing group once Close was called:
// shutdown must finish, and the loss is reported rather than hung on.
const closeAttempts = 3

// write is the writer goroutine. It commits the oldest pending group as
// soon as it is idle (natural group commit: a group is whatever arrived
// while the previous fsync ran, at most MaxBatch events), lingering up to
// FlushInterval first only when that is configured and no one waits on the
// group. It returns once Close was called and every group is settled.
func (s *Store) write() {
	defer close(s.writerDone)
	var linger *time.Timer
	if s.opt.FlushInterval > 0 {
		linger = time.NewTimer(time.Hour)
		linger.Stop()
	}
	for {
		s.qmu.Lock()
		for len(s.pending) == 0 && !s.closed {
			s.trimSpare()
			s.wake = wakeAny
			s.qmu.Unlock()
			<-s.wakeCh
			s.qmu.Lock()
		}
		if len(s.pending) == 0 { // closed and drained
			s.qmu.Unlock()
			return
		}
		g := s.pending[0]
		if linger != nil && !s.closed && !g.durable && len(g.events) < s.opt.MaxBatch {
			if wait := s.opt.FlushInterval - time.Since(g.created); wait > 0 {
				s.wake = wakeUrgent
				s.qmu.Unlock()
				linger.Reset(wait)
				select {
				case <-s.wakeCh:
					linger.Stop()
				case <-linger.C:
				}
				continue // look again: the group may have grown or filled
			}
		}
		s.wake = wakeNone
		s.pending[0] = nil
		s.pending = s.pending[1:]
		if len(s.pending) == 0 {
			s.pending = s.pending[:0:0] // let the backing array go
		}
		s.depth -= len(g.events)
		s.depthNow.Store(int64(s.depth))
		s.lastTaken = len(g.events)
		s.qmu.Unlock()

		g.err = s.commitRetrying(g)
		close(g.done)
		s.recycle(g)
	}
}

// commitRetrying commits g, retrying with backoff while the disk fails
// (full, read-only, I/O error). While it retries nothing else is taken from
// the queue, so the queue fills and Emit refuses or drops according to the
// Durability: memory stays bounded and no accepted event is given up on
// unless Close is waiting, when the group is counted lost.
func (s *Store) commitRetrying(g *group) error {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if s.opt.beforeCommit != nil {
			s.opt.beforeCommit()
		}
		s.wmu.Lock()
		err := s.commit(g.events)
		s.wmu.Unlock()
		if err == nil {
			s.healthy.Store(true)
			s.stats.written.Add(uint64(len(g.events)))
			s.stats.commits.Add(1)
			s.stats.lastSize.Store(int64(len(g.events)))
			s.stats.lastLag.Store(int64(time.Since(g.created)))
			return nil
		}
		s.stats.writeErrors.Add(1)
		s.setError(err)
		s.healthy.Store(false)
		select {
		case <-s.closing:
			if attempt >= closeAttempts {
				s.stats.lost.Add(uint64(len(g.events)))
				return fmt.Errorf("%w: group of %d events lost at close: %w", ErrStoreUnavailable, len(g.events), err)
			}
		case <-time.After(backoff):
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// withWriter runs fn while the writer cannot commit, so fn may use the
// writer's inserter (tests and benchmarks commit directly through it).
func (s *Store) withWriter(fn func() error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return fn()
}
