package activity

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Store is the activity log. Emit is safe for concurrent use from any number
// of request goroutines; so are the read and cursor methods.
type Store struct {
	opt Options

	// wdb has exactly one connection: the writer, Advance, Prune and the
	// alert methods share it, so SQLite's single-writer rule is enforced by
	// the pool rather than by SQLITE_BUSY retries. rdb serves reads, which
	// WAL lets run beside it.
	wdb, rdb *sql.DB
	// sinks: the exporters' errors and deliveries (sinkhealth.go).
	sinks sinkHealth
	ins   *inserter // used only by the writer goroutine, under wmu
	wmu   sync.Mutex
	feat  features // the optional structures this store keeps

	// The top lists' cache and what invalidates it (rollup.go): highWater
	// is the newest event time written (Unix ns); rollupGen changes when a
	// group wrote before the settled hour; prunedMax is the newest event
	// time retention deleted, pruneGen counts its deletions.
	tops                topCache
	highWater           atomic.Int64
	rollupGen, pruneGen atomic.Uint64
	prunedMax           atomic.Int64

	// qmu guards the queue: the pending groups (oldest first), their total
	// event count, the writer's wake-up wish and closed. Emit holds it for
	// an append, so once Close set closed no event can slip in after the
	// writer's final drain.
	qmu     sync.Mutex
	pending []*group
	depth   int
	spare   [][]Event // event buffers of committed groups, for reuse
	// lastTaken is the size of the group the writer took last: a new
	// group's buffer is made that large (emit.go newGroup).
	lastTaken int
	wake      int
	closed    bool
	wakeCh    chan struct{} // capacity 1: "look at the queue"
	depthNow  atomic.Int64  // depth, for Stats without the lock

	closing    chan struct{} // closed by Close: stop retrying and pruning
	writerDone chan struct{}
	prunerDone chan struct{}
	alertsDone chan struct{}

	// maxAge and maxBytes are the retention in force: Options' at Open,
	// SetRetention's after (retention.go).
	maxAge, maxBytes atomic.Int64
	pruneNow         chan struct{} // capacity 1: "apply retention now"

	healthy atomic.Bool // false after a failed group commit, until one succeeds
	stats   counters
	lastErr atomic.Pointer[error]
}

// Open opens (creating if needed, migrating if older) the store at path,
// writes the alert summaries of days that ended while it was closed, and
// starts its writer, its alert summarizer and its pruner (which does
// nothing while no retention is set).
func Open(path string, opt Options) (*Store, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	opt = opt.withDefaults()
	dsn := writeDSN(path)
	if opt.writerCacheKiB > 0 {
		dsn += fmt.Sprintf("&_pragma=cache_size(-%d)", opt.writerCacheKiB) // the last one applies
	}
	wdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open activity store: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	s := &Store{
		opt:        opt,
		feat:       features{fullText: !opt.noFullText, rollups: !opt.noRollups},
		wdb:        wdb,
		wakeCh:     make(chan struct{}, 1),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		prunerDone: make(chan struct{}),
		alertsDone: make(chan struct{}),
		pruneNow:   make(chan struct{}, 1),
	}
	s.maxAge.Store(int64(opt.MaxAge))
	s.maxBytes.Store(opt.MaxBytes)
	if err := s.init(path); err != nil {
		s.closeDBs()
		return nil, err
	}
	s.healthy.Store(true)
	s.stats.capacity = opt.QueueSize
	// Days that ended while the appliance was down get their summaries now.
	if _, err := s.SummarizeAlerts(time.Now()); err != nil {
		s.closeDBs()
		return nil, err
	}
	go s.write()
	go s.alertLoop()
	go s.pruneLoop()
	return s, nil
}

// checkPath refuses a store path the driver cannot take: it splits its DSN
// at the first '?'.
func checkPath(path string) error {
	if path == "" || strings.ContainsRune(path, '?') {
		return fmt.Errorf("activity store path %q: empty or contains '?'", path)
	}
	return nil
}

// writeDSN configures the write connection.
//   - txlock=immediate: every transaction takes the write lock at BEGIN,
//     so a writer that finds it held waits (busy_timeout) instead of
//     failing. A deferred transaction that reads first (SummarizeAlerts,
//     RaiseAlert) and then writes gets SQLITE_BUSY at once, without the
//     busy handler, when another connection committed after its read:
//     what a second owner of the file (`portcullis activity search`, before
//     it opened a Reader) met beside the running daemon's group commits.
//   - auto_vacuum=incremental lets size retention hand freed pages back to
//     the file system; it only takes effect on a new database.
//   - synchronous=FULL makes every group commit fsync the WAL: an event
//     counted as written survives power loss.
//   - temp_store=memory keeps statement journals off disk: retention's
//     delete triggers open one per statement, and as temp files they cost
//     half of the statement time in write(2) calls (measured with pprof).
//   - a 4 MiB page cache keeps the hot right edges of the indexes resident
//     across groups: events are time-ordered, so the working set is those
//     edges and the interior pages above them, not the store. Each page
//     costs twice its size in RSS (4 KiB and its header take an 8 KiB slot
//     of modernc's C allocator): at 16 MiB SQLite's heap was 35-37 MiB. With
//     a 185 MiB store (BenchmarkWriterCache, 300k events, three rounds
//     alternated): at 16, 8, 4 and 2 MiB the writer missed 0.008-0.010,
//     0.013-0.016, 0.034-0.041 and 0.171 pages per event, each a pread of
//     a page the OS holds (about 2 µs here): 4 MiB adds under 0.1 µs to the
//     40-50 µs of CPU per event, 0.2%, well below the run-to-run noise of
//     ±10% that the benchmark's cpu_us/ev shows. The C heap was 35, 18,
//     9.5 and 5.4 MiB. 2 MiB leaves little room for an appliance
//     whose users and apps are many more than the benchmark's five and
//     three (an index insertion point each). It was 64 MiB before 16 (RSS
//     +48 MiB for no measured gain).
func writeDSN(path string) string {
	return path + "?_busy_timeout=10000&_txlock=immediate&_journal_mode=WAL&_synchronous=FULL&_auto_vacuum=incremental" +
		"&_pragma=temp_store(memory)&_pragma=cache_size(-4096)"
}

// readDSN configures the read connections. Their page caches hold little
// for long: a connection drops its whole cache when it starts reading after
// the writer committed, so what a cache keeps is one query's pages. But
// SQLite (built with SQLITE_ENABLE_MEMORY_MANAGEMENT) keeps every
// connection's pages in one pool: a connection at its own cache_size takes
// the pool's least recently used page, the writer's too, so one search
// reading many rows held the writer's cache size plus its own after it
// ended (BenchmarkWriterCache readers_MiB: 18.5 MiB with the writer at 16
// MiB and the default 2000 KiB here; 5.2 MiB with 4 MiB and 1 MiB). A
// query needs its index's interior pages and its current leaves; 1 MiB
// (256 pages) holds those.
func readDSN(path string) string {
	return path + "?_busy_timeout=10000&_query_only=1&_pragma=cache_size(-1024)"
}

func (s *Store) init(path string) error {
	if err := migrateWith(s.wdb, s.feat); err != nil {
		return err
	}
	var err error
	if s.ins, err = newInserter(s.wdb, s.feat, s.opt.ftsBatch); err != nil {
		return err
	}
	var hw sql.NullInt64
	if err := s.wdb.QueryRow("SELECT max(ts) FROM events").Scan(&hw); err != nil {
		return fmt.Errorf("read newest event time: %w", err)
	}
	s.highWater.Store(hw.Int64)
	if s.rdb, err = sql.Open("sqlite", readDSN(path)); err != nil {
		return fmt.Errorf("open activity store for reading: %w", err)
	}
	s.rdb.SetMaxOpenConns(4)
	s.rdb.SetMaxIdleConns(readIdleConns)
	return nil
}

// Close stops accepting events, waits until every event Emit accepted is
// committed, and closes the database. If the disk kept failing, Close gives up
// after a few attempts and reports how many accepted events were lost,
// wrapping ErrStoreUnavailable. Closing twice returns nil.
func (s *Store) Close() error {
	s.qmu.Lock()
	if s.closed {
		s.qmu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.qmu.Unlock()
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}

	<-s.writerDone
	<-s.prunerDone
	<-s.alertsDone
	closeErr := s.closeDBs()
	if lost := s.stats.lost.Load(); lost > 0 {
		return fmt.Errorf("%w: %d accepted events not written: %v", ErrStoreUnavailable, lost, s.lastError())
	}
	return closeErr
}

func (s *Store) closeDBs() error {
	var errs []error
	if s.ins != nil {
		errs = append(errs, s.ins.close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	errs = append(errs, s.wdb.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close activity store: %w", err)
	}
	return nil
}

func (s *Store) setError(err error) { s.lastErr.Store(&err) }

func (s *Store) lastError() error {
	if p := s.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// LastError is the most recent failure to commit (nil when none since
// start), for the console's health panel.
func (s *Store) LastError() error { return s.lastError() }
