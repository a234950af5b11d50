package activity

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Reader searches a store that another process (the running daemon) owns
// and writes. Open is the owner's: it migrates the schema, writes the alert
// summaries of days that ended while it was closed, and starts a writer, a
// pruner and a summarizer, all of which would then run beside the daemon's
// (two writers taking turns at the lock, two pruners applying retention).
// A Reader opens only the read-only connections Search uses: it never
// creates, migrates or writes the file.
type Reader struct {
	s *Store
}

// OpenReader opens the store at path for searching. The file must exist
// and hold this build's schema (the daemon migrates an older one when it
// starts).
func OpenReader(path string) (*Reader, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no activity store at %s (the daemon creates it when it first runs)", path)
		}
		return nil, fmt.Errorf("activity store: %w", err)
	}
	rdb, err := sql.Open("sqlite", readDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open activity store for reading: %w", err)
	}
	rdb.SetMaxOpenConns(1)
	var v int
	if err := rdb.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("activity store %s: read schema version: %w", path, err)
	}
	if v != schemaVersion {
		rdb.Close()
		return nil, fmt.Errorf("activity store %s has schema version %d, this build reads %d (the daemon migrates the store when it starts)", path, v, schemaVersion)
	}
	var fts int
	if err := rdb.QueryRow("SELECT count(*) FROM sqlite_master WHERE name = 'events_fts'").Scan(&fts); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("activity store %s: %w", path, err)
	}
	return &Reader{s: &Store{rdb: rdb, feat: features{fullText: fts > 0}}}, nil
}

// Search is Store.Search on the reader's connection.
func (r *Reader) Search(q Query) (Page, error) { return r.s.Search(q) }

// Close closes the reader's connection.
func (r *Reader) Close() error { return r.s.rdb.Close() }
