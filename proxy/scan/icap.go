package scan

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ICAPConfig says which ICAP service scans files and how.
type ICAPConfig struct {
	// URL is icap://host[:port]/service[?query]; the port defaults to 1344.
	URL string
	// Mode is "respmod" (the file travels as a downloaded HTTP response; the
	// default) or "reqmod" (as an uploaded HTTP request body).
	Mode string
	// Timeout bounds one scan, an OPTIONS request it needs included; 0 means
	// 30 seconds. The context's deadline applies too, whichever is first.
	Timeout time.Duration
	// Preview caps the preview: 0 sends as many bytes as the service's
	// OPTIONS ask for (at most 32 KiB), n > 0 at most n, -1 never previews.
	Preview int
	// Allow204 offers "Allow: 204" when the service's OPTIONS allow it, so a
	// clean file is not sent back. Without it a clean file comes back whole
	// and is compared with what was sent.
	Allow204 bool
}

// Validate reports a configuration this client cannot honour.
func (c ICAPConfig) Validate() error {
	_, err := parseICAPURL(c.URL)
	if err != nil {
		return err
	}
	if _, err := icapMethod(c.Mode); err != nil {
		return err
	}
	if c.Timeout < 0 {
		return errors.New("icap: Timeout must not be negative")
	}
	if c.Preview < -1 {
		return errors.New("icap: Preview must be -1 (never), 0 (as the service asks) or a byte count")
	}
	return nil
}

func icapMethod(mode string) (string, error) {
	switch strings.ToLower(mode) {
	case "", "respmod":
		return "RESPMOD", nil
	case "reqmod":
		return "REQMOD", nil
	}
	return "", fmt.Errorf("icap: Mode %q: want \"respmod\" or \"reqmod\"", mode)
}

type icapTarget struct {
	hostport string // for dialling and the Host header
	uri      string // absolute request URI
}

func parseICAPURL(raw string) (icapTarget, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return icapTarget{}, fmt.Errorf("icap: URL: %w", err)
	}
	switch {
	case u.Scheme != "icap":
		return icapTarget{}, fmt.Errorf("icap: URL %q: the scheme must be icap", raw)
	case u.Host == "" || u.Hostname() == "":
		return icapTarget{}, fmt.Errorf("icap: URL %q has no host", raw)
	case u.User != nil || u.Fragment != "":
		return icapTarget{}, fmt.Errorf("icap: URL %q: user information and fragments are not part of ICAP", raw)
	case strings.Trim(u.Path, "/") == "":
		return icapTarget{}, fmt.Errorf("icap: URL %q names no service", raw)
	}
	port := u.Port()
	if port == "" {
		port = "1344"
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return icapTarget{}, fmt.Errorf("icap: URL %q: bad port", raw)
	}
	t := icapTarget{hostport: net.JoinHostPort(u.Hostname(), port)}
	t.uri = "icap://" + t.hostport + u.EscapedPath()
	if u.RawQuery != "" {
		t.uri += "?" + u.RawQuery
	}
	return t, nil
}

// ICAPOptions is what a service's OPTIONS response says.
type ICAPOptions struct {
	Methods  []string // "RESPMOD", "REQMOD"
	Preview  int      // bytes the service wants first; -1 when it takes no preview
	Allow204 bool     // the service may answer 204 for an unmodified message
	ISTag    string   // the service's state; it changes when its signatures do
	Service  string
	// TTL is how long these options hold (Options-TTL); 0 when unsaid.
	TTL time.Duration
}

// maxOptionsAge bounds how long options are kept when the service sets no
// Options-TTL (RFC 3507 would keep them for ever).
const maxOptionsAge = time.Hour

// ICAP scans files through an ICAP service (RFC 3507), one connection per
// request. Connections are not kept, for the reason [Clamd] gives.
type ICAP struct {
	cfg    ICAPConfig
	method string
	target icapTarget

	fetching chan struct{} // one OPTIONS request at a time
	mu       sync.Mutex
	opts     ICAPOptions
	optsTill time.Time
}

// NewICAP checks cfg and returns a client; it does not connect. The first
// Scan asks the service for its OPTIONS.
func NewICAP(cfg ICAPConfig) (*ICAP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	t, _ := parseICAPURL(cfg.URL)
	m, _ := icapMethod(cfg.Mode)
	return &ICAP{cfg: cfg, method: m, target: t, fetching: make(chan struct{}, 1)}, nil
}

// Name is "icap".
func (c *ICAP) Name() string { return icapName }

const icapName = "icap"

// Options asks the service for its OPTIONS now (a health check) and keeps
// them for the following scans.
func (c *ICAP) Options(ctx context.Context) (ICAPOptions, error) {
	return c.fetchOptions(ctx, time.Now().Add(c.cfg.Timeout))
}

func (c *ICAP) fetchOptions(ctx context.Context, deadline time.Time) (ICAPOptions, error) {
	x, err := dial(ctx, icapName, "tcp", c.target.hostport, deadline)
	if err != nil {
		return ICAPOptions{}, err
	}
	defer x.close()
	req := "OPTIONS " + c.target.uri + " ICAP/1.0\r\nHost: " + c.target.hostport +
		"\r\nUser-Agent: Portcullis\r\nConnection: close\r\nEncapsulated: null-body=0\r\n\r\n"
	if _, err := x.conn.Write([]byte(req)); err != nil {
		return ICAPOptions{}, x.ioError("send OPTIONS", err)
	}
	h, err := readICAPHead(bufio.NewReaderSize(x.conn, icapBufSize))
	if err != nil {
		return ICAPOptions{}, c.headError(x, "read OPTIONS answer", err)
	}
	if h.status != 200 {
		return ICAPOptions{}, statusError("OPTIONS", h)
	}
	o, err := parseOptions(h)
	if err != nil {
		return ICAPOptions{}, err
	}
	age := o.TTL
	if _, set := h.get("options-ttl"); !set || age > maxOptionsAge {
		age = maxOptionsAge
	}
	c.mu.Lock()
	c.opts, c.optsTill = o, time.Now().Add(age)
	c.mu.Unlock()
	return o, nil
}

// options returns the kept options, asking for them when they are missing
// or expired; concurrent scans wait for one OPTIONS request.
func (c *ICAP) options(ctx context.Context, deadline time.Time) (ICAPOptions, error) {
	if o, ok := c.keptOptions(); ok {
		return o, nil
	}
	select {
	case c.fetching <- struct{}{}:
	case <-ctx.Done():
		return ICAPOptions{}, contextError(icapName, "waiting for OPTIONS", ctx.Err())
	}
	defer func() { <-c.fetching }()
	if o, ok := c.keptOptions(); ok {
		return o, nil
	}
	return c.fetchOptions(ctx, deadline)
}

func (c *ICAP) keptOptions() (ICAPOptions, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opts, c.opts.Methods != nil && time.Now().Before(c.optsTill)
}

func parseOptions(h *icapHead) (ICAPOptions, error) {
	o := ICAPOptions{Preview: -1}
	methods, _ := h.get("methods")
	o.Methods = listTokens(methods)
	if len(o.Methods) == 0 {
		return ICAPOptions{}, protocolError("OPTIONS without Methods")
	}
	for i, m := range o.Methods {
		o.Methods[i] = strings.ToUpper(m)
	}
	if v, ok := h.get("preview"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || !digits(v) {
			return ICAPOptions{}, protocolError("OPTIONS Preview %q", v)
		}
		o.Preview = n
	}
	allow, _ := h.get("allow")
	o.Allow204 = slices.Contains(listTokens(allow), "204")
	if v, ok := h.get("istag"); ok {
		o.ISTag = strings.Trim(v, `"`)
	}
	o.Service, _ = h.get("service")
	if v, ok := h.get("options-ttl"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || !digits(v) {
			return ICAPOptions{}, protocolError("OPTIONS Options-TTL %q", v)
		}
		o.TTL = time.Duration(min(n, math.MaxInt32)) * time.Second
	}
	return o, nil
}

// listTokens splits a comma (or space) separated header value.
func listTokens(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

func statusError(op string, h *icapHead) error {
	if h.status >= 400 && h.status <= 599 {
		return fmt.Errorf("%w: icap: %s: %d %s", ErrScanner, op, h.status, h.reason)
	}
	return protocolError("%s: unexpected status %d %s", op, h.status, h.reason)
}

// headError names a failure to read an answer: a protocol error as it is,
// a network one through ioError.
func (c *ICAP) headError(x *exchange, op string, err error) error {
	if errors.Is(err, ErrProtocol) {
		return err
	}
	return x.ioError(op, err)
}

// previewSize is the preview to send, or -1 for none.
func (c *ICAP) previewSize(o ICAPOptions) int {
	if o.Preview < 0 || c.cfg.Preview < 0 {
		return -1
	}
	p := min(o.Preview, maxPreview)
	if c.cfg.Preview > 0 {
		p = min(p, c.cfg.Preview)
	}
	return p
}

// Scan sends the file to the service and returns its verdict.
func (c *ICAP) Scan(ctx context.Context, r io.Reader, size int64, name string) (Verdict, error) {
	deadline := time.Now().Add(c.cfg.Timeout)
	o, err := c.options(ctx, deadline)
	if err != nil {
		return Verdict{}, err
	}
	if !slices.Contains(o.Methods, c.method) {
		return Verdict{}, fmt.Errorf("%w: icap: %s offers %v, not %s", ErrUnsupported, c.target.uri, o.Methods, c.method)
	}
	preview := c.previewSize(o)
	x, err := dial(ctx, icapName, "tcp", c.target.hostport, deadline)
	if err != nil {
		return Verdict{}, err
	}
	defer x.close()

	e := &icapExchange{x: x, cont: make(chan bool, 1), sent: make(chan sendResult, 1)}
	head := c.requestHead(size, name, preview, c.cfg.Allow204 && o.Allow204)
	go func() { e.sent <- sendFile(x, head, r, size, preview, e.cont) }()

	v, err := c.verdict(e, size, preview >= 0)
	// Whatever was decided, stop the sender and wait for it: it must not
	// touch the caller's reader after Scan returns.
	e.stopContinue()
	x.abort()
	w := e.wait()
	var src *sourceError
	if errors.As(w.err, &src) {
		return Verdict{}, fmt.Errorf("icap: %w", w.err)
	}
	return v, err
}
