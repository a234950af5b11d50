package appliance

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// accessFile is the access log written to a file, rotated by size: once
// the file holds maxBytes, it becomes <path>.1 (the older ones moving up to
// <path>.<keep>, the oldest removed) and a new file is started. A line is
// never split across two files: rotation waits for the end of the line
// being written (bufferedLog hands its buffer over in chunks that may end
// mid-line).
//
// The packaged appliance writes here rather than to the journal: one
// journal entry per request costs journald more CPU than the request costs
// the appliance, and its rate limit (10,000 entries per 30 s by default)
// drops lines at a few hundred requests a second. Every request is also an
// activity event; the access log is the plain-text tail of it.
//
// A rotation that fails (a rename refused, the directory gone) leaves the
// current file in use and is tried again after another maxBytes; it is
// counted (portcullis_access_log_rotation_errors_total) and logged.
type accessFile struct {
	path     string
	maxBytes int64
	keep     int
	f        *os.File
	size     int64
	midLine  bool // the last byte written was not a newline

	onError        func(error) // set before the first write; may be nil
	rotations      atomic.Uint64
	rotationErrors atomic.Uint64
}

const accessFileMode = 0o640

func openAccessFile(path string, maxBytes int64, keep int) (*accessFile, error) {
	// Read and write: the last byte of what is there is read below.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_RDWR, accessFileMode)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	a := &accessFile{path: path, maxBytes: maxBytes, keep: keep, f: f, size: st.Size()}
	if a.size > 0 {
		// A line the last run left unfinished (a crash mid-write) is
		// ended, so the first line of this run is whole.
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, a.size-1); err == nil && last[0] != '\n' {
			_, _ = a.write([]byte{'\n'})
		}
	}
	return a, nil
}

// Write appends p, rotating first when the file is full and a line has just
// ended, or after the first line end in p when the file filled mid-line.
func (a *accessFile) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if a.size >= a.maxBytes {
			if !a.midLine {
				a.rotate()
			} else if i := bytes.IndexByte(p, '\n'); i >= 0 {
				n, err := a.write(p[:i+1])
				written += n
				if err != nil {
					return written, err
				}
				p = p[i+1:]
				a.rotate()
				continue
			}
		}
		n, err := a.write(p)
		return written + n, err
	}
	return written, nil
}

func (a *accessFile) write(p []byte) (int, error) {
	n, err := a.f.Write(p)
	a.size += int64(n)
	if n > 0 {
		a.midLine = p[n-1] != '\n'
	}
	return n, err
}

// rotate shifts <path>.1 … <path>.<keep-1> up by one, renames the current
// file to <path>.1 and opens a new one. On failure the current file stays.
func (a *accessFile) rotate() {
	if err := a.rotateFiles(); err != nil {
		a.rotationErrors.Add(1)
		if a.onError != nil {
			a.onError(fmt.Errorf("access log %s: rotate: %w (writing on to the current file)", a.path, err))
		}
		a.size = 0 // try again after another maxBytes
		return
	}
	a.rotations.Add(1)
}

func (a *accessFile) rotateFiles() error {
	_ = os.Remove(a.path + "." + strconv.Itoa(a.keep))
	for i := a.keep - 1; i >= 1; i-- {
		from := a.path + "." + strconv.Itoa(i)
		if err := os.Rename(from, a.path+"."+strconv.Itoa(i+1)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if err := os.Rename(a.path, a.path+".1"); err != nil {
		return err
	}
	f, err := os.OpenFile(a.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, accessFileMode)
	if err != nil {
		// The current file is <path>.1 now; it goes on being written.
		return err
	}
	_ = a.f.Close()
	a.f, a.size, a.midLine = f, 0, false
	return nil
}

func (a *accessFile) Close() error { return a.f.Close() }

// collectors are the rotation counters, read at scrape time.
func (a *accessFile) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "portcullis_access_log_rotations_total",
			Help: "Times the access log file reached log.access_max_mib and was rotated.",
		}, func() float64 { return float64(a.rotations.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "portcullis_access_log_rotation_errors_total",
			Help: "Rotations of the access log file that failed (the current file was written on).",
		}, func() float64 { return float64(a.rotationErrors.Load()) }),
	}
}
