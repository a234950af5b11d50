package session

import (
	"io"
	"os"
)

// Spool keeps a held body: in memory up to memMax bytes, then in a file
// that is unlinked as soon as it is created (only the open descriptor keeps
// it), so Close — or a crash — leaves nothing on disk. It refuses bytes past
// max with ErrSpoolFull, keeping the first max.
type Spool struct {
	dir    string
	memMax int64
	max    int64
	mem    []byte
	f      *os.File
	n      int64
	full   bool
	err    error
	// overflow keeps the bytes of the write that crossed max which did
	// not fit, so a caller that stops there can still forward them.
	overflow []byte
}

func newSpool(dir string, memMax, max int64) *Spool {
	return &Spool{dir: dir, memMax: memMax, max: max}
}

// Write appends p; past max it keeps what fits and returns ErrSpoolFull.
func (s *Spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n := len(p)
	if s.n+int64(len(p)) > s.max {
		s.overflow = append(s.overflow[:0], p[s.max-s.n:]...)
		p = p[:s.max-s.n]
		s.full = true
	}
	if s.f == nil && s.n+int64(len(p)) > s.memMax {
		f, err := os.CreateTemp(s.dir, "portcullis-spool-*")
		if err != nil {
			s.err = err
			return 0, err
		}
		_ = os.Remove(f.Name())
		if _, err := f.Write(s.mem); err != nil {
			_ = f.Close()
			s.err = err
			return 0, err
		}
		s.f, s.mem = f, nil
	}
	if s.f != nil {
		if _, err := s.f.WriteAt(p, s.n); err != nil {
			s.err = err
			return 0, err
		}
	} else {
		s.mem = append(s.mem, p...)
	}
	s.n += int64(len(p))
	if s.full {
		return len(p), ErrSpoolFull
	}
	return n, nil
}

// Full reports that bytes were refused past the limit.
func (s *Spool) Full() bool { return s.full }

// Size is the number of bytes kept.
func (s *Spool) Size() int64 { return s.n }

// ReadAt reads the kept bytes.
func (s *Spool) ReadAt(p []byte, off int64) (int, error) {
	if s.f != nil {
		if off+int64(len(p)) > s.n {
			if off >= s.n {
				return 0, io.EOF
			}
			n, err := s.f.ReadAt(p[:s.n-off], off)
			if err == nil {
				err = io.EOF
			}
			return n, err
		}
		return s.f.ReadAt(p, off)
	}
	if off >= int64(len(s.mem)) {
		return 0, io.EOF
	}
	n := copy(p, s.mem[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Reader reads the kept bytes from the start.
func (s *Spool) Reader() *io.SectionReader { return io.NewSectionReader(s, 0, s.n) }

// OnDisk reports whether the spool went past memory.
func (s *Spool) OnDisk() bool { return s.f != nil }

// Close releases the memory and the file.
func (s *Spool) Close() error {
	s.mem = nil
	if s.f != nil {
		err := s.f.Close()
		s.f = nil
		return err
	}
	return nil
}
