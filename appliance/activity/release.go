package activity

import "fmt"

// readIdleConns is how many read connections the pool keeps open between
// queries (database/sql's default, set explicitly so ReleaseMemory can put
// it back).
const readIdleConns = 2

// ReleaseMemory gives back what SQLite holds for speed once the caller
// knows traffic has stopped (the appliance's idle releaser): the writer's
// page cache (up to 4 MiB of pages in about 8 MiB of C heap, writeDSN), its
// prepared INSERTs (about 0.5 MiB: up to 32 rows each, for every chunk size
// and set of fixed columns in use) and argument buffers, the idle read
// connections with their caches, schemas and lookaside, and then the C
// allocator's empty pages (cheap.go). The next group reads the pages it
// needs back from the OS's page cache (a pread of about 2 µs each, a few
// hundred after a release) and prepares its statements again (a few
// milliseconds, once per burst); the next search opens a connection.
// Events are not affected: nothing queued or committed is touched.
func (s *Store) ReleaseMemory() error {
	err := s.releaseCaches()
	if terr := trimCHeap(); terr != nil && err == nil {
		err = fmt.Errorf("activity store: trim C heap: %w", terr)
	}
	return err
}

// releaseCaches is ReleaseMemory before the trim: what SQLite and the
// writer free into the C heap.
func (s *Store) releaseCaches() error {
	s.rdb.SetMaxIdleConns(0) // closes the idle ones
	s.rdb.SetMaxIdleConns(readIdleConns)
	return s.withWriter(func() error {
		if _, err := s.wdb.Exec("PRAGMA shrink_memory"); err != nil {
			return fmt.Errorf("activity store: release memory: %w", err)
		}
		if err := s.ins.release(); err != nil {
			return fmt.Errorf("activity store: release memory: %w", err)
		}
		return nil
	})
}
