package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// TestSuffixRewrittenBodyLength: a rewritten page the origin sent with a
// small Content-Length reaches the client with the rewritten length
// (HTTP/1.1 and HTTP/2, plain and gzip); a page over the bound, or one
// without a length, streams chunked. The bytes are rewritten the same way
// in every case.
func TestSuffixRewrittenBodyLength(t *testing.T) {
	sh := newSuffixHarness(t, nil)
	plain, _ := page20K()
	for _, h2 := range []bool{false, true} {
		c := sh.client(h2, false)
		tr := c.Transport.(*http.Transport)
		tr.DisableCompression = true
		for _, tc := range []struct {
			path   string
			sized  bool
			repeat int
		}{{"/page20k", true, 1}, {"/page20k.gz", true, 1}, {"/page300k", false, 15}, {"/page20k.chunked", false, 1}} {
			resp, err := c.Get("https://app.test.gw.test" + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("h2=%v %s: %d %v", h2, tc.path, resp.StatusCode, err)
			}
			if tc.sized != (resp.ContentLength == int64(len(raw))) || !tc.sized && resp.ContentLength != -1 {
				t.Errorf("h2=%v %s: Content-Length %d for %d bytes, want sized=%v", h2, tc.path, resp.ContentLength, len(raw), tc.sized)
			}
			body := raw
			if strings.HasSuffix(tc.path, ".gz") {
				if resp.Header.Get("Content-Encoding") != "gzip" {
					t.Fatalf("%s: encoding %q", tc.path, resp.Header.Get("Content-Encoding"))
				}
				zr, err := gzip.NewReader(bytes.NewReader(raw))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			// Every host the page names is an app's or a link's: all are
			// suffixed, wherever they occur (attributes, inline script).
			want := bytes.Repeat(plain, tc.repeat)
			for _, h := range []string{"app.test", "login.test", "cdn.other.example"} {
				want = bytes.ReplaceAll(want, []byte(h), []byte(h+".gw.test"))
			}
			if !bytes.Equal(body, want) {
				t.Errorf("h2=%v %s: rewritten body differs from the expected one (%d vs %d bytes)", h2, tc.path, len(body), len(want))
			}
		}
	}
}
