package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy"
	"github.com/portcullis-gw/portcullis/proxy/protect"
	"github.com/portcullis-gw/portcullis/proxy/scan"
	"github.com/portcullis-gw/portcullis/proxy/session"
)

// SessionConfig is how the appliance enforces session policies: body
// inspection, malware scanners, protection and the control script.
type SessionConfig struct {
	// InspectionTimeout bounds inspecting (and scanning) one body; past it
	// the policies' inspection_timeout behaviour decides.
	InspectionTimeout time.Duration `mapstructure:"inspection_timeout"`
	// SpoolDir holds bodies held back for a decision (files 0600, removed
	// when the transfer ends). Empty: <state_dir>/spool.
	SpoolDir string `mapstructure:"spool_dir"`
	// ControlScript injects the print/copy/paste control script into pages
	// that a clipboard or print policy covers.
	ControlScript bool          `mapstructure:"control_script"`
	Protect       ProtectConfig `mapstructure:"protect"`
	Malware       MalwareConfig `mapstructure:"malware"`

	// stepUp: identity.step_up is configured (set by Config.Validate).
	stepUp bool
}

// ProtectConfig is the protect action's setting.
type ProtectConfig struct {
	// PasswordFile holds the password that opens protected (encrypted)
	// files. Empty: policies with protect.encrypt are refused at load.
	PasswordFile string `mapstructure:"password_file"`
}

// MalwareConfig names the malware scanners; with neither, policies with
// malware: true are refused at load.
type MalwareConfig struct {
	Clamd ClamdConfig `mapstructure:"clamd"`
	ICAP  ICAPConfig  `mapstructure:"icap"`
	// Verdicts are cached by the file's SHA-256.
	CacheEntries int           `mapstructure:"cache_entries"`
	CacheTTL     time.Duration `mapstructure:"cache_ttl"`
}

// ClamdConfig is a clamd socket: "unix:/run/clamav/clamd.ctl" or
// "tcp:127.0.0.1:3310".
type ClamdConfig struct {
	Address string        `mapstructure:"address"`
	Timeout time.Duration `mapstructure:"timeout"`
}

// ICAPConfig is an ICAP antivirus service (RFC 3507).
type ICAPConfig struct {
	URL     string        `mapstructure:"url"` // icap://host:1344/avscan
	Mode    string        `mapstructure:"mode"`
	Timeout time.Duration `mapstructure:"timeout"`
}

func (s *SessionConfig) validate(bad func(key, format string, a ...any)) {
	if s.InspectionTimeout <= 0 {
		bad("session.inspection_timeout", "must be positive")
	}
	if a := s.Malware.Clamd.Address; a != "" && !strings.HasPrefix(a, "unix:") && !strings.HasPrefix(a, "tcp:") {
		bad("session.malware.clamd.address", "%q must start with unix: or tcp:", a)
	}
	if u := s.Malware.ICAP.URL; u != "" && !strings.HasPrefix(u, "icap://") {
		bad("session.malware.icap.url", "%q must be an icap:// URL", u)
	}
	switch s.Malware.ICAP.Mode {
	case "respmod", "reqmod":
	default:
		bad("session.malware.icap.mode", "%q is not one of respmod, reqmod", s.Malware.ICAP.Mode)
	}
	if s.Malware.CacheEntries < 0 || s.Malware.CacheTTL < 0 {
		bad("session.malware", "cache_entries and cache_ttl cannot be negative")
	}
}

// capabilities is what this configuration lets the appliance enforce;
// policies asking for more are refused at load (policy.CompileFor).
func (s *SessionConfig) capabilities() policy.Capabilities {
	return policy.Capabilities{
		MalwareScan:    s.Malware.Clamd.Address != "" || s.Malware.ICAP.URL != "",
		Protect:        true,
		ProtectEncrypt: s.Protect.PasswordFile != "",
		ControlScript:  s.ControlScript,
		StepUp:         s.stepUp,
	}
}

// protectPassword reads the password for protected files.
func (s *SessionConfig) protectPassword() (string, error) {
	if s.Protect.PasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(s.Protect.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("session.protect.password_file: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if len(pw) < 8 {
		return "", fmt.Errorf("session.protect.password_file: the password must have at least 8 characters")
	}
	return pw, nil
}

// sessionScanner builds the configured malware scanners: clamd, ICAP, or
// both (a file is infected when either says so; either failing is a
// failed scan, which the policies' default behaviour decides), behind one
// verdict cache keyed by the file's SHA-256 (cache_entries verdicts for
// cache_ttl each). nil when none is configured: policies with malware:
// true are then refused.
func (s *SessionConfig) sessionScanner() (session.Scanner, error) {
	var scanners []scan.Scanner
	if a := s.Malware.Clamd.Address; a != "" {
		network, addr, _ := strings.Cut(a, ":")
		c, err := scan.NewClamd(scan.ClamdConfig{Network: network, Address: addr, Timeout: s.Malware.Clamd.Timeout})
		if err != nil {
			return nil, fmt.Errorf("session.malware.clamd: %w", err)
		}
		scanners = append(scanners, c)
	}
	if u := s.Malware.ICAP.URL; u != "" {
		c, err := scan.NewICAP(scan.ICAPConfig{URL: u, Mode: s.Malware.ICAP.Mode, Timeout: s.Malware.ICAP.Timeout})
		if err != nil {
			return nil, fmt.Errorf("session.malware.icap: %w", err)
		}
		scanners = append(scanners, c)
	}
	if len(scanners) == 0 {
		return nil, nil
	}
	return cachedScanner{scan.NewCache(malwareScanners(scanners), s.Malware.CacheEntries, s.Malware.CacheTTL)}, nil
}

// cachedScanner is the enforcer's view of the verdict cache: held files
// are asked by digest, streamed files scanned and their verdict kept.
type cachedScanner struct{ c *scan.Cached }

var _ session.DigestScanner = cachedScanner{}

func (s cachedScanner) Scan(ctx context.Context, r io.Reader, size int64, name string) (bool, string, error) {
	v, err := s.c.Scanner().Scan(ctx, r, size, name)
	return v.Infected, v.Signature, err
}

func (s cachedScanner) ScanDigest(ctx context.Context, digest [32]byte, r io.Reader, size int64, name string) (bool, string, bool, error) {
	v, err := s.c.ScanDigest(ctx, digest, r, size, name)
	return v.Infected, v.Signature, v.Cached, err
}

func (s cachedScanner) Remember(digest [32]byte, infected bool, signature string) {
	s.c.Remember(digest, scan.Verdict{Infected: infected, Signature: signature, Scanner: s.c.Name()})
}

// malwareScanners runs every scanner over the same stream; its verdict is
// the first infected one, and its Name joins theirs ("clamd+icap").
type malwareScanners []scan.Scanner

var _ scan.Scanner = malwareScanners(nil)

func (m malwareScanners) Name() string {
	names := make([]string, len(m))
	for i, sc := range m {
		names[i] = sc.Name()
	}
	return strings.Join(names, "+")
}

func (m malwareScanners) Scan(ctx context.Context, r io.Reader, size int64, name string) (scan.Verdict, error) {
	if len(m) == 1 {
		return m[0].Scan(ctx, r, size, name)
	}
	// Several scanners read the same bytes: each gets a pipe fed from r.
	ws := make([]*io.PipeWriter, len(m))
	type result struct {
		v   scan.Verdict
		err error
	}
	res := make(chan result, len(m))
	for i, sc := range m {
		pr, pw := io.Pipe()
		ws[i] = pw
		go func() {
			v, err := sc.Scan(ctx, pr, size, name)
			pr.CloseWithError(errScannerDone)
			res <- result{v, err}
		}()
	}
	writers := make([]io.Writer, len(ws))
	for i, w := range ws {
		writers[i] = w
	}
	_, copyErr := io.Copy(multiWriterTolerant(writers), r)
	for _, w := range ws {
		w.CloseWithError(copyErr)
	}
	var infected scan.Verdict
	var errs []error
	for range m {
		r := <-res
		switch {
		case r.err != nil:
			errs = append(errs, r.err)
		case r.v.Infected && !infected.Infected:
			infected = scan.Verdict{Infected: true, Signature: r.v.Scanner + ": " + r.v.Signature, Scanner: r.v.Scanner}
		}
	}
	if infected.Infected {
		return infected, nil
	}
	if err := errors.Join(errs...); err != nil {
		return scan.Verdict{}, err
	}
	return scan.Verdict{Scanner: m.Name()}, nil
}

var errScannerDone = errors.New("scanner returned")

// multiWriterTolerant writes to every writer, dropping one that failed
// (its scanner returned early) instead of stopping the others.
type multiWriterTolerant []io.Writer

func (m multiWriterTolerant) Write(p []byte) (int, error) {
	for i, w := range m {
		if w == nil {
			continue
		}
		if _, err := w.Write(p); err != nil {
			m[i] = nil
		}
	}
	return len(p), nil
}

// sessionConfig is the proxy's session enforcement: the running engine,
// who is asking, scanners, protection, spool and alerts.
func (a *Appliance) sessionConfig() (*proxy.SessionConfig, error) {
	s := &a.cfg.Session
	scanner, err := s.sessionScanner()
	if err != nil {
		return nil, err
	}
	spool := s.SpoolDir
	if spool == "" {
		spool = filepath.Join(a.cfg.StateDir, "spool")
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, fmt.Errorf("session.spool_dir: %w", err)
	}
	sc := &proxy.SessionConfig{
		Engine:            a.policies.engine.Load,
		Subject:           requestSubject,
		SpoolDir:          spool,
		InspectionTimeout: s.InspectionTimeout,
		ScanTimeout:       s.InspectionTimeout,
		Log:               a.log,
		Alert: func(ci *proxy.ConnInfo, r *http.Request, req *policy.SessionRequest, d *policy.SessionDecision) {
			act := d.Activity
			if act == "" {
				act = r.Method + " " + r.URL.Path
			}
			a.policies.alerts.alertsOf(d.Matches, d.App, req.Subject, req.Host, act)
		},
	}
	if scanner != nil {
		sc.Scanner = scanner
	}
	pw, err := s.protectPassword()
	if err != nil {
		return nil, err
	}
	sc.Protector = newProtector(pw)
	if s.ControlScript {
		// The in-page controls' tokens are keyed by the session secret
		// (suffix.session_secrets, shared by a fleet, or the per-install
		// key); the control package derives its own keys from it.
		secrets, err := sessionSecrets(a.cfg)
		if err != nil {
			return nil, err
		}
		sc.ControlKey = secrets[0]
	}
	return sc, nil
}

// requestSubject is who is asking: the client's address and kind, and the
// user the proxy knows for the request.
func requestSubject(ci *proxy.ConnInfo, r *http.Request) policy.Subject {
	subj := subjectOf(ci)
	// The request's User-Agent refines the connection's classification.
	kind := proxy.ClientOf(r)
	subj.ClientApp, subj.UATags = kind.Client, kind.UATags
	if id, ok := proxy.RequestUser(r.Context()); ok {
		subj.User, subj.Groups = id.User, id.Groups
		if len(id.DeviceTags) > 0 {
			subj.DeviceTags = slices.Concat(subj.DeviceTags, id.DeviceTags) // from the IdP's claims
		}
	}
	return subj
}

// protector adapts proxy/protect to the enforcer: files it cannot protect
// are session.ErrUnsupported, which the policy's protect.unsupported
// decides (block by default).
type protector struct{ password string }

func newProtector(password string) session.Protector { return protector{password: password} }

func (p protector) Protect(dst io.Writer, src io.ReaderAt, size int64, mime string, pol *policy.Protect) (bool, bool, error) {
	if pol.Encrypt && p.password == "" {
		// Refused at load (CompileFor); a policy that slipped through is
		// not let out unencrypted.
		return false, false, fmt.Errorf("%w: no password for protected files is configured", session.ErrUnsupported)
	}
	res, err := protect.Protect(dst, src, size, mime, protect.Options{Label: pol.Label, Encrypt: pol.Encrypt, Password: p.password})
	if errors.Is(err, protect.ErrUnsupported) {
		return false, false, fmt.Errorf("%w: %v", session.ErrUnsupported, err)
	}
	if err != nil {
		return false, false, err
	}
	return res.Labeled, res.Encrypted, nil
}

// sessionCollector exports the session enforcer's counters at scrape time;
// fail_open counts every request a policy could not evaluate and the
// default let through.
type sessionCollector struct {
	s    *session.Stats
	desc *prometheus.Desc
}

var _ prometheus.Collector = (*sessionCollector)(nil)

func newSessionCollector(s *session.Stats) *sessionCollector {
	return &sessionCollector{s: s, desc: prometheus.NewDesc("portcullis_session_total",
		"Session enforcement outcomes: decisions, inspections, scans, blocks, replaced and protected files, fail-opens.", []string{"outcome"}, nil)}
}

func (c *sessionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *sessionCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	for outcome, v := range map[string]uint64{
		"decided": s.Decided.Load(), "inspected": s.Inspected.Load(), "held": s.Held.Load(), "streamed": s.Streamed.Load(),
		"too_large": s.TooLarge.Load(), "inspection_failed": s.Failed.Load(), "inspection_timeout": s.Timeouts.Load(),
		"scan_error": s.ScanErrors.Load(), "scan_cached": s.ScanCached.Load(), "infected": s.Infected.Load(), "fail_open": s.FailOpen.Load(),
		"fail_closed": s.FailClosed.Load(), "blocked": s.Blocked.Load(), "replaced": s.Replaced.Load(),
		"protected": s.Protected.Load(), "unsupported": s.Unsupported.Load(), "client_error": s.ClientErrors.Load(),
	} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), outcome)
	}
}
