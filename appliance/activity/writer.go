package activity

import (
	"database/sql"
	"fmt"
	"time"
)

// closeAttempts bounds the retries of a failing group once Close was called:
// shutdown must finish, and the loss is reported rather than hung on.
const closeAttempts = 3

// write is the writer goroutine: it takes the first waiting event, gathers
// more for up to FlushInterval or MaxBatch events, and commits them as one
// fsynced transaction. It returns once the queue is closed and drained.
func (s *Store) write() {
	defer close(s.writerDone)
	group := make([]queued, 0, s.opt.MaxBatch)
	window := time.NewTimer(time.Hour)
	window.Stop()
	for {
		first, ok := <-s.queue
		if !ok {
			return
		}
		group = append(group[:0], first)
		drained := s.gather(&group, window)
		s.commitRetrying(group)
		clear(group) // drop references to the events' strings and slices
		if drained {
			return
		}
	}
}

// gather appends to group until it is full, the window ends or the queue is
// closed and empty (then it reports true).
//
// A group with a durable waiter does not wait out the window: it takes what
// is already queued and commits, so a waiter pays one fsync, not the window.
func (s *Store) gather(group *[]queued, window *time.Timer) (drained bool) {
	waiter := (*group)[0].durable != nil
	window.Reset(s.opt.FlushInterval)
	defer window.Stop()
	for len(*group) < s.opt.MaxBatch {
		if waiter {
			select {
			case q, ok := <-s.queue:
				if !ok {
					return true
				}
				*group = append(*group, q)
			default:
				return false
			}
			continue
		}
		select {
		case q, ok := <-s.queue:
			if !ok {
				return true
			}
			*group = append(*group, q)
			waiter = waiter || q.durable != nil
		case <-window.C:
			return false
		}
	}
	return false
}

// settle tells the group's durable waiters how its commit ended.
func settle(group []queued, err error) {
	for i := range group {
		if group[i].durable != nil {
			group[i].durable <- err
		}
	}
}

// commitRetrying commits group, retrying with backoff while the disk fails
// (full, read-only, I/O error). While it retries nothing else is taken from
// the queue, so the queue fills and Emit refuses or drops according to the
// Durability: memory stays bounded and no accepted event is given up on
// unless Close is waiting.
func (s *Store) commitRetrying(group []queued) {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if s.opt.beforeCommit != nil {
			s.opt.beforeCommit()
		}
		err := s.commit(group)
		if err == nil {
			s.healthy.Store(true)
			s.stats.written.Add(uint64(len(group)))
			s.stats.lastSize.Store(int64(len(group)))
			s.stats.lastLag.Store(int64(time.Since(group[0].enqueued)))
			settle(group, nil)
			return
		}
		s.stats.writeErrors.Add(1)
		s.setError(err)
		s.healthy.Store(false)
		select {
		case <-s.closing:
			if attempt >= closeAttempts {
				s.stats.lost.Add(uint64(len(group)))
				settle(group, fmt.Errorf("activity: group lost at close: %w", err))
				return
			}
		case <-time.After(backoff):
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// commit writes group in one transaction.
func (s *Store) commit(group []queued) (err error) {
	tx, err := s.wdb.Begin()
	if err != nil {
		return fmt.Errorf("begin group: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the commit error is the one worth reporting
		}
	}()
	if err := insertEvents(tx.Stmt(s.insert), group); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit group: %w", err)
	}
	return nil
}

func insertEvents(stmt *sql.Stmt, group []queued) error {
	for i := range group {
		args, err := eventArgs(&group[i].ev)
		if err != nil {
			return err
		}
		if _, err := stmt.Exec(args...); err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
	}
	return nil
}
