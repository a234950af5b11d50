package control

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

var testKey = bytes.Repeat([]byte{7}, 32)

// testClock is a settable clock.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

func newTestController(t testing.TB) (*Controller, *testClock) {
	t.Helper()
	clock := &testClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	c, err := New(Config{Key: testKey, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return c, clock
}

var blockAll = Rules{Print: Block, CutCopy: Block, Paste: Block, Message: "no"}

// injectBytes runs Inject over body and returns the output, the inserted
// markup and the response headers after Inject.
func injectBytes(t testing.TB, c *Controller, h http.Header, body []byte, rules Rules) (out, insert []byte, err error) {
	t.Helper()
	rc, err := c.Inject(h, io.NopCloser(bytes.NewReader(body)), "app.test", rules, "sess")
	if err != nil {
		return nil, nil, err
	}
	b, ok := rc.(*Body)
	if !ok {
		t.Fatalf("Inject returned %T, want *Body", rc)
	}
	out, err = io.ReadAll(b)
	if cerr := b.Close(); cerr != nil {
		t.Errorf("close: %v", cerr)
	}
	return out, b.insert, err
}

// removeOnce returns out with one occurrence of insert cut out, and where
// it was (-1 when it is not there).
func removeOnce(out, insert []byte) ([]byte, int) {
	i := bytes.Index(out, insert)
	if i < 0 {
		return out, -1
	}
	return append(append([]byte{}, out[:i]...), out[i+len(insert):]...), i
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
