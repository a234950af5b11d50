package activity

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// JSONLines exports events to a file, one JSON object per line, in commit
// order, rotating it by size. Delivery is at-least-once: a batch is written
// and fsynced before the sink's cursor moves, so a crash in between repeats
// that batch on restart; receivers de-duplicate on the event ID.
type JSONLines struct {
	Store *Store
	// Sink names the cursor (default "jsonl").
	Sink string
	// Path is the live file; rotated files are Path.1 (newest) … Path.Keep.
	Path string
	// MaxBytes rotates the file once it is this large (default 100 MiB).
	MaxBytes int64
	// Keep is how many rotated files are kept (default 5).
	Keep int
	// Poll is how often the store is read when idle (default 200 ms).
	Poll time.Duration
}

func (j *JSONLines) defaults() {
	if j.Sink == "" {
		j.Sink = "jsonl"
	}
	if j.MaxBytes <= 0 {
		j.MaxBytes = 100 << 20
	}
	if j.Keep <= 0 {
		j.Keep = 5
	}
	if j.Poll <= 0 {
		j.Poll = 200 * time.Millisecond
	}
}

// Run exports until ctx ends, then delivers what is already stored and
// returns. Write errors are retried after Poll; they never lose an event
// because the cursor only moves after a successful write.
func (j *JSONLines) Run(ctx context.Context) error {
	j.defaults()
	for {
		n, err := j.ExportOnce()
		j.Store.NoteSinkError(j.Sink, err)
		if ctx.Err() != nil {
			if err == nil && n > 0 {
				continue // drain what was stored before the stop
			}
			return err
		}
		if err != nil || n == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(j.Poll):
			}
		}
	}
}

// ExportOnce writes the next batch after the sink's cursor and reports how
// many events it delivered.
func (j *JSONLines) ExportOnce() (int, error) {
	j.defaults()
	events, err := j.Store.ReadAfter(j.Sink, 1000)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	f, err := os.OpenFile(j.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return 0, fmt.Errorf("jsonl export: %w", err)
	}
	buf := make([]byte, 0, 64<<10)
	for i := range events {
		line, err := json.Marshal(&events[i])
		if err != nil {
			f.Close()
			return 0, fmt.Errorf("jsonl export: event %s: %w", events[i].ID, err)
		}
		buf = append(append(buf, line...), '\n')
	}
	_, werr := f.Write(buf)
	if werr == nil {
		werr = f.Sync()
	}
	st, serr := f.Stat()
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return 0, fmt.Errorf("jsonl export: %w", werr)
	}
	if err := j.Store.Advance(j.Sink, events[len(events)-1].Seq); err != nil {
		return 0, err
	}
	if serr == nil && st.Size() >= j.MaxBytes {
		if err := j.rotate(); err != nil {
			return len(events), err
		}
	}
	return len(events), nil
}

// rotate shifts Path.k to Path.k+1 (dropping the oldest) and Path to Path.1.
func (j *JSONLines) rotate() error {
	_ = os.Remove(j.Path + "." + strconv.Itoa(j.Keep))
	for k := j.Keep - 1; k >= 1; k-- {
		from := j.Path + "." + strconv.Itoa(k)
		if _, err := os.Stat(from); err == nil {
			if err := os.Rename(from, j.Path+"."+strconv.Itoa(k+1)); err != nil {
				return fmt.Errorf("jsonl rotate: %w", err)
			}
		}
	}
	if err := os.Rename(j.Path, j.Path+".1"); err != nil {
		return fmt.Errorf("jsonl rotate: %w", err)
	}
	// Make the renames durable before new lines go to a new file.
	if d, err := os.Open(filepath.Dir(j.Path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
