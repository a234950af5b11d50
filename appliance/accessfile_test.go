package appliance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The access log file rotates at its size: every file holds whole lines,
// each rotated one at least maxBytes and less than a line more, the kept
// files (oldest first, then the current one) are the newest lines written
// in order, the oldest beyond keep are removed, and the files are 0640.
// The writes come through a small bufio.Writer, as bufferedLog's flushes
// do, so most of them end mid-line.
func TestAccessFileRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	const maxBytes, keep, lines = 1000, 3, 400
	f, err := openAccessFile(path, maxBytes, keep)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 97)
	var want []string
	for i := range lines {
		line := fmt.Sprintf(`{"msg":"request","n":%d,"pad":"%s"}`, i, strings.Repeat("x", i%37))
		want = append(want, line)
		if _, err := w.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.rotations.Load() < keep+1 || f.rotationErrors.Load() != 0 {
		t.Fatalf("%d rotations, %d errors; want more than %d and none", f.rotations.Load(), f.rotationErrors.Load(), keep)
	}
	if _, err := os.Stat(fmt.Sprintf("%s.%d", path, keep+1)); !os.IsNotExist(err) {
		t.Fatalf("%s.%d kept: %v", path, keep+1, err)
	}
	var got []string
	for i := keep; i >= 0; i-- {
		name := path
		if i > 0 {
			name = fmt.Sprintf("%s.%d", path, i)
		}
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v, want 0640", name, st.Mode().Perm())
		}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Fatalf("%s ends mid-line", name)
		}
		if i > 0 && (len(data) < maxBytes || len(data) >= maxBytes+100) {
			t.Errorf("%s: %d bytes, want %d up to a line more", name, len(data), maxBytes)
		}
		got = append(got, strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")...)
	}
	if len(got) == 0 || len(got) >= lines {
		t.Fatalf("%d lines kept of %d", len(got), lines)
	}
	if tail := want[len(want)-len(got):]; strings.Join(got, "\n") != strings.Join(tail, "\n") {
		t.Fatalf("the kept files are not the last %d lines in order", len(got))
	}
}

// A file the last run left mid-line (a crash) gets its line ended, so the
// next run's first line is whole; and a rotation that fails leaves the
// current file in use, counted, logged and written on.
func TestAccessFileReopenAndRotationFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	if err := os.WriteFile(path, []byte("{\"whole\":1}\n{\"cut"), 0o640); err != nil {
		t.Fatal(err)
	}
	// <path>.1 a directory with a file in it: the rename onto it fails.
	if err := os.MkdirAll(filepath.Join(path+".1", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := openAccessFile(path, 64, 1)
	if err != nil {
		t.Fatal(err)
	}
	var logged []error
	f.onError = func(err error) { logged = append(logged, err) }
	for i := range 10 {
		if _, err := fmt.Fprintf(f, "{\"line\":%d,\"pad\":\"................\"}\n", i); err != nil {
			t.Fatal(err)
		}
	}
	_ = f.Close()
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 12 || lines[1] != `{"cut` || !strings.HasPrefix(lines[2], `{"line":0,`) || !strings.HasPrefix(lines[11], `{"line":9,`) {
		t.Fatalf("access log after a cut line and failed rotations:\n%s", data)
	}
	if f.rotationErrors.Load() == 0 || len(logged) == 0 || !strings.Contains(logged[0].Error(), "rotate") {
		t.Fatalf("rotation errors %d, logged %v", f.rotationErrors.Load(), logged)
	}
}

// failingDst fails its writes while fail is set.
type failingDst struct {
	mu   sync.Mutex
	fail bool
	got  bytes.Buffer
}

func (d *failingDst) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return 0, errors.New("no space left on device")
	}
	return d.got.Write(p)
}

func (d *failingDst) Close() error { return nil }

// A failed write (a full disk) does not end the access log: the lines
// buffered then are dropped, the failure counted and logged once, and the
// lines after it are written when the destination takes them again
// (bufio.Writer alone would return its first error for good).
func TestBufferedLogGoesOnAfterAFailedWrite(t *testing.T) {
	dst := &failingDst{}
	l := newBufferedLog(dst)
	var logged []error
	var mu sync.Mutex
	l.onError = func(err error) { mu.Lock(); logged = append(logged, err); mu.Unlock() }
	dst.mu.Lock()
	dst.fail = true
	dst.mu.Unlock()
	line := strings.Repeat("x", 1000) + "\n"
	for range 200 { // more than the 64 KiB buffer: writes fail on the way
		_, _ = l.Write([]byte("lost " + line))
	}
	// The flusher's next tick fails too and drops the last of them.
	e0 := l.writeErrors.Load()
	for deadline := time.Now().Add(5 * time.Second); l.writeErrors.Load() == e0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the flusher did not try again within 5s")
		}
	}
	dst.mu.Lock()
	dst.fail = false
	dst.mu.Unlock()
	for range 3 {
		if _, err := l.Write([]byte("kept " + line)); err != nil {
			t.Fatalf("write after the destination recovered: %v", err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := dst.got.String()
	if strings.Count(got, "kept ") != 3 || strings.Contains(got, "lost ") {
		t.Fatalf("after recovery the log holds %d kept and %d lost lines, want 3 and 0", strings.Count(got, "kept "), strings.Count(got, "lost "))
	}
	mu.Lock()
	defer mu.Unlock()
	if l.writeErrors.Load() < 2 || len(logged) != 1 || !strings.Contains(logged[0].Error(), "no space left") {
		t.Fatalf("%d write errors counted, logged %v; want at least 2 and one log line", l.writeErrors.Load(), logged)
	}
}
