package session

import "sync"

// Geometry of the inspection pipe. A transfer holds at most pipeDepth
// chunks of pipeChunk bytes (128 KiB) whatever its size; bodies whose
// declared size fits in pipeMinSize are checked inline, where a goroutine
// and its hand-offs would cost more than they overlap.
const (
	pipeDepth   = 4
	pipeChunk   = 32 << 10
	pipeMinSize = 2 * pipeChunk
)

var pipeBuffers = sync.Pool{New: func() any { b := make([]byte, pipeChunk); return &b }}

// inspectPipe runs a file's checks (decoder, SHA-256, detectors, scanner
// feed) on a goroutine of their own, so that they overlap with the copy
// loop's TLS and network work instead of adding to it. The copy loop hands
// over copies of its bytes in recycled buffers: at most pipeDepth are in
// flight, and when the checks fall behind, put waits for one to come back —
// back-pressure on the transfer, never memory that grows with the body.
//
// Only the goroutine touches what run touches until wait returns; the
// channel hand-offs order everything it wrote before everything the caller
// reads afterwards.
type inspectPipe struct {
	work chan *[]byte // filled chunks, in order; closed by wait
	free chan *[]byte // buffers the copy loop may fill
	done chan struct{}
	made int // buffers taken from the pool so far (copy loop only)
}

func startPipe(run func([]byte)) *inspectPipe {
	p := &inspectPipe{work: make(chan *[]byte, pipeDepth), free: make(chan *[]byte, pipeDepth), done: make(chan struct{})}
	go func() {
		for b := range p.work {
			run(*b)
			p.free <- b
		}
		// Every buffer is back in free: the copy loop gave up the pipe
		// before closing work.
		for len(p.free) > 0 {
			b := <-p.free
			*b = (*b)[:cap(*b)]
			pipeBuffers.Put(b)
		}
		close(p.done)
	}()
	return p
}

// put hands a copy of data to the checks, waiting while pipeDepth chunks
// are still unchecked.
func (p *inspectPipe) put(data []byte) {
	for len(data) > 0 {
		var b *[]byte
		select {
		case b = <-p.free:
		default:
			if p.made < pipeDepth {
				p.made++
				b = pipeBuffers.Get().(*[]byte)
			} else {
				b = <-p.free
			}
		}
		n := copy((*b)[:cap(*b)], data)
		*b = (*b)[:n]
		p.work <- b
		data = data[n:]
	}
}

// wait ends the hand-over and returns once every chunk has been checked.
func (p *inspectPipe) wait() {
	close(p.work)
	<-p.done
}
