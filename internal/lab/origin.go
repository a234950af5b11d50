package lab

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// OriginHandler is the lab web app:
//
//	/               a small page naming the origin
//	/bytes/N        N bytes of a repeating pattern, streamed (no buffering)
//	/echo           the request body back, with the request's Host and protocol
//	/headers        the request headers as text
//	/reports/customers.csv  a download with a (test) card number in it
func OriginHandler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/reports/customers.csv", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Content-Disposition", `attachment; filename="customers.csv"`)
		_, _ = io.WriteString(w, "name,card\nAlice Example,4111 1111 1111 1111\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "hello from %s (%s %s)\n", name, r.Proto, r.Host)
	})
	mux.HandleFunc("/bytes/", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/bytes/"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.CopyN(w, patternReader{}, n)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Origin-Host", r.Host)
		w.Header().Set("X-Origin-Proto", r.Proto)
		_, _ = io.Copy(w, r.Body)
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		_ = r.Header.Write(w)
	})
	return mux
}

// patternReader yields an endless, cheap, checkable byte pattern.
type patternReader struct{}

func (patternReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte('a' + i%26)
	}
	return len(p), nil
}
