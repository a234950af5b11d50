package scan

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/scanners"
)

// sample is a test file and the verdict every scanner must give.
type sample struct {
	name      string
	data      []byte
	signature string // "" for clean
}

func samples(t testing.TB) []sample {
	big := bytes.Repeat([]byte("clean filler line for a file longer than one chunk\n"), 4000) // ~200 KiB
	return []sample{
		{"eicar.com", scanners.EICAR(), scanners.SigEICAR},
		{"marker.txt", []byte("some text, then " + scanners.Marker + " and more\n"), scanners.SigMarker},
		{"hash-sample.txt", scanners.HashSample(t), scanners.SigHashSample},
		{"clean.txt", []byte("nothing to see here\n"), ""},
		{"empty", nil, ""},
		{"big-clean.txt", big, ""},
		{"big-marker.txt", append(append([]byte{}, big...), scanners.Marker...), scanners.SigMarker},
	}
}

// checkVerdict fails unless v is s's verdict from scanner.
func checkVerdict(t *testing.T, s sample, scanner string, v Verdict, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	want := Verdict{Infected: s.signature != "", Signature: s.signature, Scanner: scanner}
	if v != want {
		t.Fatalf("%s: verdict %+v, want %+v", s.name, v, want)
	}
}

// unknownSize hides the reader's type so nothing can learn its length.
type unknownSize struct{ r io.Reader }

func (u unknownSize) Read(p []byte) (int, error) { return u.r.Read(p) }

// hangingListener accepts connections and never answers; they are closed
// when the test ends. It returns its address.
func hangingListener(t *testing.T, network string) string {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "hang.sock")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// within fails if fn takes longer than limit, and returns its error.
func within(t *testing.T, limit time.Duration, fn func() error) error {
	t.Helper()
	start := time.Now()
	err := fn()
	if d := time.Since(start); d > limit {
		t.Fatalf("took %v, want at most %v (err %v)", d, limit, err)
	}
	return err
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

var background = context.Background()
