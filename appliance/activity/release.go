package activity

import "fmt"

// readIdleConns is how many read connections the pool keeps open between
// queries (database/sql's default, set explicitly so ReleaseMemory can put
// it back).
const readIdleConns = 2

// ReleaseMemory gives back what SQLite holds for speed once the caller
// knows traffic has stopped (the appliance's idle releaser): the writer's
// page cache (up to 4 MiB of pages in about 8 MiB of C heap, writeDSN) and
// the idle read connections, with their caches, schemas and lookaside.
// The next group reads the pages it needs back from the OS's page cache (a
// pread of about 2 µs each, a few hundred after a release) and the next
// search opens a connection. Events are not affected: nothing queued or
// committed is touched.
func (s *Store) ReleaseMemory() error {
	s.rdb.SetMaxIdleConns(0) // closes the idle ones
	s.rdb.SetMaxIdleConns(readIdleConns)
	return s.withWriter(func() error {
		if _, err := s.wdb.Exec("PRAGMA shrink_memory"); err != nil {
			return fmt.Errorf("activity store: release memory: %w", err)
		}
		return nil
	})
}
