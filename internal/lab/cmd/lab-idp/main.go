package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/idp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lab-idp:", err)
		os.Exit(1)
	}
}

type options struct {
	listen                  string
	certFile, keyFile, ca   string
	idpHost, spHost         string
	opHost, rpHost          string
	suffix                  string
	proxyID, proxySecret    string
	proxyRedirectPath       string
	proxyRedirectHosts      stringList
	spMetadataURLs          stringList
	resolve                 stringList
	rpDiscoveryTimeoutInSec int
	idpCertOut              string
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("lab-idp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", ":443", "TLS listen address")
	fs.StringVar(&o.certFile, "cert", "", "PEM certificate (chain) covering the four host names (required)")
	fs.StringVar(&o.keyFile, "key", "", "PEM private key of -cert (required)")
	fs.StringVar(&o.ca, "ca", "", "PEM lab CA to trust for outgoing calls (required)")
	fs.StringVar(&o.idpHost, "idp-host", "idp.lab", "host name of the SAML IdP")
	fs.StringVar(&o.spHost, "sp-host", "sp.lab", "host name of the SAML app")
	fs.StringVar(&o.opHost, "op-host", "op.lab", "host name of the OpenID Provider")
	fs.StringVar(&o.rpHost, "rp-host", "rp.lab", "host name of the OIDC app")
	fs.StringVar(&o.suffix, "suffix", "", "appliance suffix; registers the proxy client with https://*.<suffix><proxy-redirect-path>")
	fs.StringVar(&o.proxyID, "proxy-client-id", "portcullis", "OIDC client ID of the appliance")
	fs.StringVar(&o.proxySecret, "proxy-client-secret", "", "OIDC client secret of the appliance (empty: public client, PKCE required)")
	fs.StringVar(&o.proxyRedirectPath, "proxy-redirect-path", "/.portcullis/oidc/callback", "callback path of the appliance's OIDC login")
	fs.Var(&o.proxyRedirectHosts, "proxy-redirect-host", "also accept the appliance's callback on this host (transparent mode, where the app keeps its own name; repeatable)")
	fs.Var(&o.spMetadataURLs, "sp-metadata-url", "extra SAML SP metadata URL, fetched on demand (repeatable)")
	fs.StringVar(&o.idpCertOut, "idp-cert-out", "", "write the SAML IdP's signing certificate (PEM) here, for the appliance to trust")
	fs.Var(&o.resolve, "resolve", "host=addr:port: dial host there instead of resolving it (repeatable; for tests)")
	fs.IntVar(&o.rpDiscoveryTimeoutInSec, "rp-discovery-timeout", 60, "seconds to keep retrying the OIDC app's discovery of the OP")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.certFile == "" || o.keyFile == "" || o.ca == "" {
		return nil, errors.New("-cert, -key and -ca are required")
	}
	if o.suffix != "" && !strings.HasPrefix(o.proxyRedirectPath, "/") {
		return nil, fmt.Errorf("-proxy-redirect-path %q must start with /", o.proxyRedirectPath)
	}
	return o, nil
}

// run serves until ctx is done. It prints "listening on <addr>" once the
// listener is up.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	leaf, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
	if err != nil {
		return fmt.Errorf("load -cert %s / -key %s: %w", o.certFile, o.keyFile, err)
	}
	caPEM, err := os.ReadFile(o.ca)
	if err != nil {
		return fmt.Errorf("read -ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("-ca %s: no PEM certificate found", o.ca)
	}
	client, err := outgoingClient(roots, o.resolve)
	if err != nil {
		return err
	}

	routes, rpSlot, err := buildApps(o, client)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.listen, err)
	}
	srv := &http.Server{
		Handler:           routes,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	fmt.Fprintf(stdout, "lab-idp: listening on %s (%s %s %s %s)\n", ln.Addr(), o.idpHost, o.spHost, o.opHost, o.rpHost)

	// The OIDC app discovers the OP over the network, possibly this very
	// listener, so it is built once the listener serves.
	rpCtx, cancelRP := context.WithCancel(ctx)
	rpDone := make(chan struct{})
	go func() {
		defer close(rpDone)
		startOIDCApp(rpCtx, o, client, rpSlot, stdout)
	}()
	defer func() { cancelRP(); <-rpDone }()

	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", o.listen, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// outgoingClient trusts the lab CA and dials names normally, except those
// given with -resolve.
func outgoingClient(roots *x509.CertPool, resolve []string) (*http.Client, error) {
	override := map[string]string{}
	for _, r := range resolve {
		host, addr, ok := strings.Cut(r, "=")
		if !ok || host == "" {
			return nil, fmt.Errorf("-resolve %q: want host=addr:port", r)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("-resolve %q: %w", r, err)
		}
		override[strings.ToLower(host)] = addr
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				if to, ok := override[strings.ToLower(host)]; ok {
					addr = to
				}
			}
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// hostRouter sends each request to the app of its Host.
type hostRouter map[string]http.Handler

func (h hostRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	if app, ok := h[strings.ToLower(host)]; ok {
		app.ServeHTTP(w, r)
		return
	}
	http.Error(w, "lab-idp: no app for host "+host, http.StatusMisdirectedRequest)
}

// lateHandler answers 503 until its handler is set.
type lateHandler struct{ h atomic.Pointer[http.Handler] }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := l.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Retry-After", "1")
	http.Error(w, "lab-idp: the OIDC app is still discovering its OP", http.StatusServiceUnavailable)
}

const rpClientID = "lab-rp"

// rpSecret is generated per start: only this process's OIDC app uses it.
var rpSecret = func() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

func buildApps(o *options, client *http.Client) (hostRouter, *lateHandler, error) {
	idpURL, spURL := "https://"+o.idpHost, "https://"+o.spHost
	// The IdP's metadata depends only on its URL and key, and the SP needs
	// it; a first IdP yields it, then the served IdP knows the SP's
	// metadata as bytes, with no network fetch.
	signer, err := idp.NewSigningPair(o.idpHost)
	if err != nil {
		return nil, nil, err
	}
	if o.idpCertOut != "" {
		pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signer.Cert.Raw})
		if err := os.WriteFile(o.idpCertOut, pemCert, 0o644); err != nil {
			return nil, nil, fmt.Errorf("-idp-cert-out: %w", err)
		}
	}
	_, idpMD, err := idp.NewSAMLIdP(idp.SAMLIdPConfig{BaseURL: idpURL, Cert: signer.Cert, Key: signer.Key})
	if err != nil {
		return nil, nil, err
	}
	spApp, spMD, err := idp.NewSAMLApp(idp.SAMLAppConfig{BaseURL: spURL, IdPMetadata: idpMD})
	if err != nil {
		return nil, nil, err
	}
	idpApp, _, err := idp.NewSAMLIdP(idp.SAMLIdPConfig{BaseURL: idpURL, Cert: signer.Cert, Key: signer.Key,
		SPMetadata: [][]byte{spMD}, SPMetadataURLs: o.spMetadataURLs, HTTPClient: client})
	if err != nil {
		return nil, nil, err
	}
	clients := []idp.OPClient{{ID: rpClientID, Secret: rpSecret,
		RedirectURIs: []string{"https://" + o.rpHost + "/callback"}, PostLogoutURIs: []string{"https://" + o.rpHost + "/logged-out"}}}
	if o.suffix != "" {
		redirects := []string{"https://*." + o.suffix + o.proxyRedirectPath}
		for _, h := range o.proxyRedirectHosts {
			redirects = append(redirects, "https://"+h+o.proxyRedirectPath)
		}
		clients = append(clients, idp.OPClient{ID: o.proxyID, Secret: o.proxySecret,
			RedirectURIs:   redirects,
			PostLogoutURIs: []string{"https://*." + o.suffix + "/"}})
	}
	opApp, err := idp.NewOP(idp.OPConfig{Issuer: "https://" + o.opHost, Clients: clients})
	if err != nil {
		return nil, nil, err
	}
	rp := &lateHandler{}
	return hostRouter{
		strings.ToLower(o.idpHost): idpApp,
		strings.ToLower(o.spHost):  spApp,
		strings.ToLower(o.opHost):  opApp,
		strings.ToLower(o.rpHost):  rp,
	}, rp, nil
}

// startOIDCApp retries the OIDC app's discovery until it works, the
// timeout passes or ctx ends.
func startOIDCApp(ctx context.Context, o *options, client *http.Client, slot *lateHandler, log io.Writer) {
	deadline := time.Now().Add(time.Duration(o.rpDiscoveryTimeoutInSec) * time.Second)
	for attempt := 0; ; attempt++ {
		tryCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		app, err := idp.NewOIDCApp(tryCtx, idp.OIDCAppConfig{BaseURL: "https://" + o.rpHost, Issuer: "https://" + o.opHost,
			ClientID: rpClientID, ClientSecret: rpSecret, HTTPClient: client})
		cancel()
		if err == nil {
			slot.h.Store(&app)
			fmt.Fprintf(log, "lab-idp: OIDC app ready at https://%s\n", o.rpHost)
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			fmt.Fprintf(log, "lab-idp: OIDC app unavailable after %d attempts: %v\n", attempt+1, err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}
