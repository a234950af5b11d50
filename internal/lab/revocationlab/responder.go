package revocationlab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Responder is the loopback HTTP server behind every lab CA's OCSP URL and
// CRL distribution point.
type Responder struct {
	srv *http.Server
	ln  net.Listener
	url string

	mu    sync.Mutex
	cas   map[string]*CA
	hits  map[string]int
	delay time.Duration
	// hugeBytes is how large a CRLHuge or OCSPHuge answer is at least.
	hugeBytes int
}

// Start listens on 127.0.0.1 and serves until Close.
func Start() (*Responder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return StartOn(ln, "http://"+ln.Addr().String()), nil
}

// URL is the base URL certificates name: http://127.0.0.1:port from Start,
// the given one from StartOn.
func (r *Responder) URL() string { return r.url }

// Close stops the server and ends requests in progress (hanging ones too).
func (r *Responder) Close() error { return r.srv.Close() }

// SetDelay makes every answer wait d first (0 for none), so concurrent
// checks overlap and a singleflight can be observed.
func (r *Responder) SetDelay(d time.Duration) {
	r.mu.Lock()
	r.delay = d
	r.mu.Unlock()
}

// SetHugeBytes sets the least size of OCSPHuge and CRLHuge answers
// (default 1 MiB).
func (r *Responder) SetHugeBytes(n int) {
	r.mu.Lock()
	r.hugeBytes = n
	r.mu.Unlock()
}

// Requests is how many requests arrived for a path (e.g. "/ocsp/ca1").
func (r *Responder) Requests(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

// OCSPRequests is how many OCSP requests ca's responder received.
func (ca *CA) OCSPRequests() int { return ca.responder.Requests("/ocsp/" + ca.id) }

// CRLRequests is how many times ca's CRL was downloaded.
func (ca *CA) CRLRequests() int { return ca.responder.Requests("/crl/" + ca.id + ".crl") }

func (r *Responder) register(ca *CA) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := fmt.Sprintf("ca%d", len(r.cas)+1)
	r.cas[id] = ca
	return id
}

func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	kind, rest, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/")
	id, arg, _ := strings.Cut(rest, "/")
	if kind == "crl" {
		id = strings.TrimSuffix(id, ".crl")
	}
	r.mu.Lock()
	ca := r.cas[id]
	delay := r.delay
	huge := r.hugeBytes
	if ca != nil {
		key := "/" + kind + "/" + id
		if kind == "crl" {
			key += ".crl"
		}
		r.hits[key]++
	}
	r.mu.Unlock()
	if ca == nil {
		http.NotFound(w, req)
		return
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return
		}
	}
	switch kind {
	case "ocsp":
		r.serveOCSP(w, req, ca, arg, huge)
	case "crl":
		r.serveCRL(w, req, ca, huge)
	default:
		http.NotFound(w, req)
	}
}

func (r *Responder) serveOCSP(w http.ResponseWriter, req *http.Request, ca *CA, getArg string, huge int) {
	var raw []byte
	var err error
	switch req.Method {
	case http.MethodPost:
		raw, err = io.ReadAll(io.LimitReader(req.Body, 64<<10))
	case http.MethodGet:
		raw, err = base64.StdEncoding.DecodeString(getArg)
	default:
		http.Error(w, "method", http.StatusMethodNotAllowed)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ocspReq, err := ocsp.ParseRequest(raw)
	if err != nil {
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	mode := ca.currentOCSPMode()
	switch mode {
	case OCSPDown:
		http.Error(w, "responder down", http.StatusServiceUnavailable)
		return
	case OCSPHang:
		hang(req.Context())
		return
	case OCSPGarbage:
		w.Write(randomBytes(512))
		return
	case OCSPHuge:
		w.Write(randomBytes(huge))
		return
	}
	body, err := ca.ocspAnswer(ocspReq.SerialNumber, mode)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(body)
}

func (r *Responder) serveCRL(w http.ResponseWriter, req *http.Request, ca *CA, huge int) {
	mode := ca.currentCRLMode()
	switch mode {
	case CRLDown:
		http.Error(w, "CRL server down", http.StatusServiceUnavailable)
		return
	case CRLHang:
		hang(req.Context())
		return
	case CRLGarbage:
		w.Write(randomBytes(2048))
		return
	}
	body, err := ca.crlWith(mode, huge)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Write(body)
}

// hang holds a request until the client gives up or the server closes.
func hang(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
