package appliance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/appliance/console"
)

// The client side of the console's JSON API (appliance/console/openapi.yaml)
// for `portcullis remote ...`: a session file, an HTTPS client that trusts
// the appliance CA, and the API's errors said in words.

// remoteEndpoint is one documented /api/v1 operation; Path is the template
// of openapi.yaml's paths ({id} for a path parameter).
type remoteEndpoint struct{ Method, Path string }

var (
	epLogin     = remoteEndpoint{http.MethodPost, "/login"}
	epLogout    = remoteEndpoint{http.MethodPost, "/logout"}
	epSession   = remoteEndpoint{http.MethodGet, "/session"}
	epDashboard = remoteEndpoint{http.MethodGet, "/dashboard"}
	epEvents    = remoteEndpoint{http.MethodGet, "/events"}
	epExport    = remoteEndpoint{http.MethodGet, "/events/export"}
	epPolicies  = remoteEndpoint{http.MethodGet, "/policies"}
	epRevisions = remoteEndpoint{http.MethodGet, "/policies/revisions"}
	epTray      = remoteEndpoint{http.MethodGet, "/tray"}
	epStage     = remoteEndpoint{http.MethodPost, "/tray/changes"}
	epDiscard   = remoteEndpoint{http.MethodDelete, "/tray/changes/{id}"}
	epApply     = remoteEndpoint{http.MethodPost, "/tray/apply"}
	epConfirm   = remoteEndpoint{http.MethodPost, "/tray/confirm"}
	epRevert    = remoteEndpoint{http.MethodPost, "/tray/revert"}
	epAudit     = remoteEndpoint{http.MethodGet, "/audit"}
)

// remoteEndpoints is every operation the CLI calls (a test checks each
// against openapi.yaml).
var remoteEndpoints = []remoteEndpoint{epLogin, epLogout, epSession, epDashboard, epEvents, epExport, epPolicies,
	epRevisions, epTray, epStage, epDiscard, epApply, epConfirm, epRevert, epAudit}

// remoteObserve, when set (tests), sees every call the client makes.
var remoteObserve func(remoteEndpoint)

// expand fills the template's parameters in order, escaped.
func (ep remoteEndpoint) expand(args ...string) string {
	p := ep.Path
	for _, a := range args {
		i, j := strings.IndexByte(p, '{'), strings.IndexByte(p, '}')
		if i < 0 || j < i {
			break
		}
		p = p[:i] + url.PathEscape(a) + p[j+1:]
	}
	return p
}

// consoleSessionCookie is the console's session cookie; its __Host-
// prefix means Secure, Path=/ and no Domain, which the client checks.
const consoleSessionCookie = "__Host-portcullis-console"

// remoteSession is the session file: where, how to trust it, and the
// session's cookie and CSRF token. It is 0600: the cookie is a login.
type remoteSession struct {
	URL     string    `json:"url"`
	CAPEM   string    `json:"ca_pem,omitempty"` // empty: the system's roots
	Cookie  string    `json:"cookie"`
	CSRF    string    `json:"csrf_token"`
	User    string    `json:"user"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
}

// errNotLoggedIn: no session file, or the console ended the session.
var errNotLoggedIn = errors.New("not logged in to the console: run `portcullis remote login`")

// defaultSessionPath is the session file under the user's configuration
// directory ($XDG_CONFIG_HOME, else ~/.config).
func defaultSessionPath(env Env) (string, error) {
	dir := env.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := env.getenv("HOME")
		if home == "" {
			return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set: give the session file with --session")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "portcullis", "console-session.json"), nil
}

func loadSession(path string) (*remoteSession, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNotLoggedIn
	}
	if err != nil {
		return nil, fmt.Errorf("session file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("session file %s is open to group or others (mode %04o): remove it and log in again", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("session file: %w", err)
	}
	var s remoteSession
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("session file %s: %w (remove it and log in again)", path, err)
	}
	if s.URL == "" || s.Cookie == "" {
		return nil, errNotLoggedIn
	}
	return &s, nil
}

// saveSession writes the file atomically, 0600, in a 0700 directory.
func saveSession(path string, s *remoteSession) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("session file: %w", err)
	}
	f, err := os.CreateTemp(dir, ".console-session-*")
	if err != nil {
		return fmt.Errorf("session file: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("session file: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("session file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("session file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("session file: %w", err)
	}
	return nil
}

// consoleURL checks a console address: HTTPS, a host, nothing else.
func consoleURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("console URL %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "https":
		return "", fmt.Errorf("console URL %q: the console is served over HTTPS only (https://host:port)", raw)
	case u.Host == "":
		return "", fmt.Errorf("console URL %q: no host", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "":
		return "", fmt.Errorf("console URL %q: give only https://host:port", raw)
	}
	return "https://" + u.Host, nil
}

// consoleURLOf is the console of a configuration: its console.listen, an
// unspecified address read as localhost (the certificate's name then).
func consoleURLOf(cc ConsoleConfig) (string, error) {
	if cc.Listen == "" {
		return "", errors.New("console.listen is empty in the configuration (no console): give --url")
	}
	host, port, err := net.SplitHostPort(cc.Listen)
	if err != nil {
		return "", fmt.Errorf("console.listen %q: %w", cc.Listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

// certificatesOnly keeps the CERTIFICATE blocks of a PEM file (what the
// session file keeps of it: never a key that came in the same file).
func certificatesOnly(b []byte) (string, error) {
	var out []byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
				return "", err
			}
			out = append(out, pem.EncodeToMemory(blk)...)
		}
	}
	if len(out) == 0 {
		return "", errors.New("no PEM certificate in it")
	}
	return string(out), nil
}

// remoteClient calls the API with a session (nil for the login itself).
type remoteClient struct {
	base string
	sess *remoteSession
	http *http.Client
}

func newRemoteClient(base, caPEM string) (*remoteClient, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("the CA file holds no PEM certificate")
		}
		conf.RootCAs = pool
	}
	// No proxy from the environment: the session cookie goes to the
	// console and nowhere else, and no redirect is followed.
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 15 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute, IdleConnTimeout: time.Minute,
		DialContext: (&net.Dialer{Timeout: 15 * time.Second}).DialContext}
	return &remoteClient{base: base, http: &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// remoteAPIError is an answer of 400 or more.
type remoteAPIError struct {
	Status       int
	Endpoint     remoteEndpoint
	Base, Role   string
	User         string
	Msg          string
	CodeRequired bool
	Problems     []struct {
		Text string `json:"text"`
	}
	Conflicts []int
}

func (e *remoteAPIError) Error() string {
	switch e.Status {
	case http.StatusUnauthorized:
		if e.Endpoint == epLogin {
			return "login refused: " + e.Msg
		}
		return fmt.Sprintf("not logged in to %s (no session, or it ended): run `portcullis remote login`", e.Base)
	case http.StatusForbidden:
		if e.Role == "auditor" {
			return fmt.Sprintf("refused: %s is an auditor, and auditors cannot change anything (%s)", e.User, e.Msg)
		}
		return "refused: " + e.Msg
	case http.StatusConflict:
		msg := "conflict: " + e.Msg
		if len(e.Conflicts) > 0 {
			var ids []string
			for _, id := range e.Conflicts {
				ids = append(ids, strconv.Itoa(id))
			}
			msg += " (changes " + strings.Join(ids, ", ") + "; discard them and stage again)"
		}
		return msg
	case http.StatusUnprocessableEntity:
		msg := e.Msg
		for _, p := range e.Problems {
			msg += "\n  " + p.Text
		}
		return msg
	case http.StatusLocked, http.StatusTooManyRequests:
		return e.Msg
	}
	return fmt.Sprintf("%s /api/v1%s: HTTP %d: %s", e.Endpoint.Method, e.Endpoint.Path, e.Status, e.Msg)
}

// call sends one request (in: the JSON body, or nil) and, for an answer
// below 400, decodes its JSON into out (unless nil). A streamed answer
// uses open instead.
func (c *remoteClient) call(ctx context.Context, ep remoteEndpoint, args []string, q url.Values, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	resp, err := c.open(ctx, ep, args, q, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s /api/v1%s: answer: %w", ep.Method, ep.Path, err)
	}
	return nil
}

// open sends one request and returns the answer when it is below 400;
// the caller closes its body.
func (c *remoteClient) open(ctx context.Context, ep remoteEndpoint, args []string, q url.Values, in any) (*http.Response, error) {
	if remoteObserve != nil {
		remoteObserve(ep)
	}
	u := c.base + "/api/v1" + ep.expand(args...)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, ep.Method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "portcullis-cli")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.sess != nil {
		req.AddCookie(&http.Cookie{Name: consoleSessionCookie, Value: c.sess.Cookie})
		if ep.Method != http.MethodGet {
			req.Header.Set("X-CSRF-Token", c.sess.CSRF)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	if resp.StatusCode < 400 {
		if resp.StatusCode >= 300 {
			resp.Body.Close()
			return nil, fmt.Errorf("%s /api/v1%s: unexpected redirect (HTTP %d to %q): is %s the console?", ep.Method, ep.Path,
				resp.StatusCode, resp.Header.Get("Location"), c.base)
		}
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &remoteAPIError{Status: resp.StatusCode, Endpoint: ep, Base: c.base}
	if c.sess != nil {
		e.User, e.Role = c.sess.User, c.sess.Role
	}
	var m struct {
		Error        string `json:"error"`
		CodeRequired bool   `json:"code_required"`
		Problems     []struct {
			Text string `json:"text"`
		} `json:"problems"`
		Conflicts []int `json:"conflicts"`
	}
	if json.Unmarshal(b, &m) == nil && m.Error != "" {
		e.Msg, e.CodeRequired, e.Problems, e.Conflicts = m.Error, m.CodeRequired, m.Problems, m.Conflicts
	} else {
		e.Msg = strings.TrimSpace(string(b))
		if e.Msg == "" {
			e.Msg = http.StatusText(resp.StatusCode)
		}
	}
	return nil, e
}

// transportError says what to do about a certificate the trusted CA did
// not issue.
func (c *remoteClient) transportError(err error) error {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return fmt.Errorf("%s: the console's certificate is not trusted (%v): log in with --ca FILE, the appliance CA "+
			"(`portcullis ca cert` prints it on the appliance)", c.base, cv.Err)
	}
	return fmt.Errorf("console %s: %w", c.base, err)
}

// fresh drops kept connections, so the next call opens a new one (the
// confirmation of a risky change proves the console is still reachable).
func (c *remoteClient) fresh() { c.http.CloseIdleConnections() }

// sessionCookieOf is the session cookie of a login answer, checked
// against the __Host- prefix's rules.
func sessionCookieOf(resp *http.Response) (string, error) {
	for _, ck := range resp.Cookies() {
		if ck.Name != consoleSessionCookie {
			continue
		}
		if !ck.Secure || ck.Path != "/" || ck.Domain != "" || ck.Value == "" {
			return "", fmt.Errorf("the console's %s cookie breaks the __Host- rules (Secure, Path=/, no Domain)", consoleSessionCookie)
		}
		return ck.Value, nil
	}
	return "", fmt.Errorf("the console's login answer set no %s cookie", consoleSessionCookie)
}

// prompter reads what the user types: from a terminal without echo for
// secrets, otherwise line by line from standard input (a script pipes the
// password, then the code when the account has one).
type prompter struct {
	in     io.Reader
	fd     int // the terminal's descriptor, or -1
	r      *bufio.Reader
	stderr io.Writer
	once   sync.Once
}

func newPrompter(env Env) *prompter {
	in := env.Stdin
	if in == nil {
		in = os.Stdin
	}
	p := &prompter{in: in, fd: -1, stderr: env.Stderr}
	if f, ok := in.(*os.File); ok {
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			p.fd = int(f.Fd())
		}
	}
	return p
}

func (p *prompter) terminal() bool { return p.fd >= 0 }

func (p *prompter) line() (string, error) {
	p.once.Do(func() { p.r = bufio.NewReader(p.in) })
	s, err := p.r.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || s == "") {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// ask reads one line, showing the prompt on a terminal.
func (p *prompter) ask(prompt string) (string, error) {
	if p.terminal() {
		fmt.Fprint(p.stderr, prompt)
	}
	return p.line()
}

// secret reads one line without echo on a terminal.
func (p *prompter) secret(prompt, what string) (string, error) {
	if !p.terminal() {
		s, err := p.line()
		if err != nil {
			return "", fmt.Errorf("no %s on standard input: %w", what, err)
		}
		return s, nil
	}
	fmt.Fprint(p.stderr, prompt)
	old, err := unix.IoctlGetTermios(p.fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ECHONL
	if err := unix.IoctlSetTermios(p.fd, unix.TCSETS, &quiet); err != nil {
		return "", err
	}
	defer func() { _ = unix.IoctlSetTermios(p.fd, unix.TCSETS, old) }()
	s, err := p.line()
	if err != nil {
		return "", fmt.Errorf("no %s typed: %w", what, err)
	}
	return s, nil
}

// tray is GET /tray: the pending changes as they would apply now.
func (c *remoteClient) tray(ctx context.Context) (*console.TrayView, error) {
	var tv console.TrayView
	if err := c.call(ctx, epTray, nil, nil, nil, &tv); err != nil {
		return nil, err
	}
	return &tv, nil
}
