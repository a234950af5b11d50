package rewrite_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/portcullis-gw/portcullis/proxy/rewrite"
)

// suffixMapper onboards a fixed set of hosts under gw.example.
type suffixMapper map[string]bool

func (m suffixMapper) Suffix(h string) (string, bool) { return h + ".gw.example", m[h] }
func (m suffixMapper) Unsuffix(h string) (string, bool) {
	o, ok := strings.CutSuffix(h, ".gw.example")
	return o, ok && m[o]
}

// A response on its way back to the browser: headers first, then the body
// streamed through NewBody (bodies of other types pass through as they are).
func Example() {
	m := suffixMapper{"app.example.com": true}
	h := http.Header{
		"Location":   {"https://app.example.com/home"},
		"Set-Cookie": {"sid=1; Domain=example.com; Secure"},
	}
	rewrite.ResponseHeaders(h, "app.example.com", m, rewrite.HeaderOptions{})
	fmt.Println(h.Get("Location"))
	fmt.Println(h.Get("Set-Cookie"))

	var out bytes.Buffer
	w, ok, err := rewrite.NewBody(&out, "text/html; charset=utf-8", "", "app.example.com", m, rewrite.BodyOptions{})
	if err != nil || !ok {
		return
	}
	_, _ = io.WriteString(w, `<a href="https://app.example.com/x">x</a>`)
	_ = w.Close()
	fmt.Println(out.String())
	// Output:
	// https://app.example.com.gw.example/home
	// sid=1; Secure
	// <a href="https://app.example.com.gw.example/x">x</a>
}
