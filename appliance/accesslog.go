package appliance

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// bufferedLog batches access-log lines into few writes: one write(2) per
// request costs more than the rest of the log line. Lines reach the file
// within flushEvery, and everything buffered is written on Close.
type bufferedLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	dst  io.WriteCloser
	stop chan struct{}
	done chan struct{}
}

const flushEvery = 200 * time.Millisecond

func newBufferedLog(dst io.WriteCloser) *bufferedLog {
	l := &bufferedLog{w: bufio.NewWriterSize(dst, 64<<10), dst: dst, stop: make(chan struct{}), done: make(chan struct{})}
	go l.flusher()
	return l
}

func (l *bufferedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *bufferedLog) flusher() {
	defer close(l.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.mu.Lock()
			_ = l.w.Flush()
			l.mu.Unlock()
		case <-l.stop:
			return
		}
	}
}

// Close flushes what is buffered and closes the destination.
func (l *bufferedLog) Close() error {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.w.Flush()
	if cerr := l.dst.Close(); err == nil {
		err = cerr
	}
	return err
}
