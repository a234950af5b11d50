package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/scanners"
)

func newClamd(t testing.TB, cfg ClamdConfig) *Clamd {
	t.Helper()
	c, err := NewClamd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClamd scans the samples through a real clamd that loads the test
// signature database, with the size known and unknown.
func TestClamd(t *testing.T) {
	sock := scanners.StartClamd(t)
	c := newClamd(t, ClamdConfig{Network: "unix", Address: sock, Timeout: 10 * time.Second})
	for _, s := range samples(t) {
		t.Run(s.name, func(t *testing.T) {
			v, err := c.Scan(background, bytes.NewReader(s.data), int64(len(s.data)), s.name)
			checkVerdict(t, s, "clamd", v, err)
			v, err = c.Scan(background, unknownSize{bytes.NewReader(s.data)}, -1, s.name)
			checkVerdict(t, s, "clamd", v, err)
		})
	}
	t.Run("health", func(t *testing.T) {
		if err := c.Ping(background); err != nil {
			t.Fatal(err)
		}
		v, err := c.Version(background)
		if err != nil || !strings.HasPrefix(v, "ClamAV ") {
			t.Fatalf("Version = %q, %v", v, err)
		}
	})
}

// TestClamdSizeLimits: clamd's own StreamMaxLength and the client's
// MaxStream both end in ErrTooLarge, never in a verdict.
func TestClamdSizeLimits(t *testing.T) {
	sock := scanners.StartClamd(t)
	over := bytes.Repeat([]byte{'a'}, scanners.ClamdStreamMaxLength+clamdChunk)

	t.Run("clamd", func(t *testing.T) {
		c := newClamd(t, ClamdConfig{Network: "unix", Address: sock, Timeout: 10 * time.Second})
		_, err := c.Scan(background, bytes.NewReader(over), int64(len(over)), "over")
		wantErr(t, err, ErrTooLarge)
	})
	t.Run("known size", func(t *testing.T) {
		// The address is never dialled: a size over MaxStream fails first.
		c := newClamd(t, ClamdConfig{Network: "unix", Address: filepath.Join(t.TempDir(), "none"), MaxStream: 1 << 20})
		_, err := c.Scan(background, bytes.NewReader(over), int64(len(over)), "over")
		wantErr(t, err, ErrTooLarge)
	})
	t.Run("unknown size", func(t *testing.T) {
		c := newClamd(t, ClamdConfig{Network: "unix", Address: sock, Timeout: 10 * time.Second, MaxStream: 1 << 20})
		_, err := c.Scan(background, unknownSize{bytes.NewReader(over)}, -1, "over")
		wantErr(t, err, ErrTooLarge)
		// At the limit exactly is fine.
		v, err := c.Scan(background, unknownSize{bytes.NewReader(over[:1<<20])}, -1, "at")
		if err != nil || v.Infected {
			t.Fatalf("at MaxStream: %+v, %v", v, err)
		}
	})
}

func TestClamdDown(t *testing.T) {
	c := newClamd(t, ClamdConfig{Network: "unix", Address: filepath.Join(t.TempDir(), "missing.sock"), Timeout: 5 * time.Second})
	err := within(t, time.Second, func() error {
		_, err := c.Scan(background, strings.NewReader("x"), 1, "x")
		return err
	})
	wantErr(t, err, ErrUnavailable)
	wantErr(t, c.Ping(background), ErrUnavailable)

	tcp := newClamd(t, ClamdConfig{Network: "tcp", Address: "127.0.0.1:1", Timeout: 5 * time.Second})
	err = within(t, time.Second, func() error {
		_, err := tcp.Scan(background, strings.NewReader("x"), 1, "x")
		return err
	})
	wantErr(t, err, ErrUnavailable)
}

// TestClamdHangs: a clamd that accepts and never answers costs Timeout, or
// the context's deadline when that is sooner, and then an ErrTimeout.
func TestClamdHangs(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			addr := hangingListener(t, network)
			c := newClamd(t, ClamdConfig{Network: network, Address: addr, Timeout: 300 * time.Millisecond})
			err := within(t, 2*time.Second, func() error {
				_, err := c.Scan(background, strings.NewReader("small"), 5, "small")
				return err
			})
			wantErr(t, err, ErrTimeout)
			// A file larger than the socket buffers blocks the writes instead.
			err = within(t, 2*time.Second, func() error {
				big := bytes.Repeat([]byte{'b'}, 16<<20)
				_, err := c.Scan(background, bytes.NewReader(big), int64(len(big)), "big")
				return err
			})
			wantErr(t, err, ErrTimeout)
			err = within(t, 2*time.Second, func() error { return c.Ping(background) })
			wantErr(t, err, ErrTimeout)

			slow := newClamd(t, ClamdConfig{Network: network, Address: addr, Timeout: time.Minute})
			ctx, cancel := context.WithTimeout(background, 200*time.Millisecond)
			defer cancel()
			err = within(t, 2*time.Second, func() error {
				_, err := slow.Scan(ctx, strings.NewReader("small"), 5, "small")
				return err
			})
			wantErr(t, err, ErrTimeout)
			wantErr(t, err, context.DeadlineExceeded)

			ctx, cancel = context.WithCancel(background)
			time.AfterFunc(100*time.Millisecond, cancel)
			err = within(t, 2*time.Second, func() error {
				_, err := slow.Scan(ctx, strings.NewReader("small"), 5, "small")
				return err
			})
			wantErr(t, err, context.Canceled)
		})
	}
}

// TestClamdConcurrent runs many scans at once, through a connection bound
// smaller than their number.
func TestClamdConcurrent(t *testing.T) {
	sock := scanners.StartClamd(t)
	c := newClamd(t, ClamdConfig{Network: "unix", Address: sock, Timeout: 20 * time.Second, MaxConns: 4})
	all := samples(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		s := all[i%len(all)]
		wg.Go(func() {
			v, err := c.Scan(background, bytes.NewReader(s.data), int64(len(s.data)), s.name)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", s.name, err)
			} else if v.Signature != s.signature || v.Infected != (s.signature != "") {
				errs <- fmt.Errorf("%s: %+v", s.name, v)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

// TestClamdSourceErrors: a file that cannot be read, or whose length is
// not the size given, is an error of its own, not the scanner's.
func TestClamdSourceErrors(t *testing.T) {
	sock := scanners.StartClamd(t)
	c := newClamd(t, ClamdConfig{Network: "unix", Address: sock, Timeout: 10 * time.Second})
	_, err := c.Scan(background, &failingReader{n: 100 << 10}, -1, "x")
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("error %v, want the reader's", err)
	}
	for _, size := range []int64{3, 10} {
		_, err = c.Scan(background, strings.NewReader("12345"), size, "x")
		if err == nil || !strings.Contains(err.Error(), "size") {
			t.Fatalf("size %d for 5 bytes: error %v", size, err)
		}
	}
}

func TestParseInstreamReply(t *testing.T) {
	for _, tc := range []struct {
		reply string
		sig   string
		err   error
	}{
		{"stream: OK", "", nil},
		{"stream: Win.Test.EICAR_HDB-1 FOUND", "Win.Test.EICAR_HDB-1", nil},
		{"stream: Eicar(44d88612fea8a8f36de82e1278abb02f:68) FOUND", "Eicar(44d88612fea8a8f36de82e1278abb02f:68)", nil},
		{"INSTREAM size limit exceeded. ERROR", "", ErrTooLarge},
		{"stream: Can't allocate memory ERROR", "", ErrScanner},
		{"UNKNOWN COMMAND", "", ErrProtocol},
		{"stream:  FOUND", "", ErrProtocol},
		{"stream: OK\x01", "", ErrProtocol},
		{"", "", ErrProtocol},
	} {
		v, err := parseInstreamReply(tc.reply)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%q: error %v, want %v", tc.reply, err, tc.err)
			}
			continue
		}
		if err != nil || v.Signature != tc.sig || v.Infected != (tc.sig != "") || v.Scanner != "clamd" {
			t.Errorf("%q: %+v, %v", tc.reply, v, err)
		}
	}
}

func TestReadClamdReply(t *testing.T) {
	if _, err := readClamdReply(strings.NewReader(strings.Repeat("x", maxClamdReply+10))); !errors.Is(err, ErrProtocol) {
		t.Errorf("overlong answer: %v", err)
	}
	if r, err := readClamdReply(strings.NewReader("stream: OK\x00junk")); r != "stream: OK" || err != nil {
		t.Errorf("got %q, %v", r, err)
	}
	if _, err := readClamdReply(strings.NewReader("")); err != io.EOF {
		t.Errorf("empty: %v", err)
	}
}

func TestClamdConfigValidate(t *testing.T) {
	for _, cfg := range []ClamdConfig{
		{},
		{Network: "udp", Address: "x"},
		{Network: "unix"},
		{Network: "tcp", Address: "nohostport"},
		{Network: "unix", Address: "/x", Timeout: -1},
	} {
		if _, err := NewClamd(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
