// Command lab-origin is the lab's web origin for the demo and the benchmarks:
// HTTPS (HTTP/1.1 and HTTP/2) and plain HTTP serving lab.OriginHandler, with a
// certificate from a lab CA it writes to -dir on first start.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lab-origin:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "/run/portcullis-lab", "where the lab CA certificate is written (lab-ca.pem)")
	names := flag.String("names", "origin.lab", "comma-separated DNS names and IPs for the certificate")
	httpsAddr := flag.String("https", ":443", "HTTPS listen address")
	httpAddr := flag.String("http", ":80", "plain HTTP listen address")
	flag.Parse()

	ca, err := lab.NewTestCA("Portcullis lab origin CA")
	if err != nil {
		return err
	}
	leaf, err := ca.Leaf(lab.LeafOptions{Names: strings.Split(*names, ",")})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "lab-ca.pem"), ca.PEM, 0o644); err != nil {
		return err
	}
	h := lab.OriginHandler("lab-origin")
	errc := make(chan error, 2)
	go func() {
		srv := &http.Server{Addr: *httpsAddr, Handler: h, ReadHeaderTimeout: 10 * time.Second,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}}
		errc <- srv.ListenAndServeTLS("", "")
	}()
	go func() {
		srv := &http.Server{Addr: *httpAddr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
		errc <- srv.ListenAndServe()
	}()
	return <-errc
}
