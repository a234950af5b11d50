package appliance

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/console"
	"github.com/portcullis-gw/portcullis/policy"
)

// ConsoleConfig is the `console:` section: the local web console.
type ConsoleConfig struct {
	// Listen is the console's HTTPS address, on the management interface;
	// empty: no console.
	Listen string `mapstructure:"listen"`
	// Names are extra host names or addresses its certificate (from the
	// appliance CA) covers besides the listen address.
	Names []string `mapstructure:"names"`
	// Certificate and Key: an admin's certificate instead (PEM files).
	Certificate string `mapstructure:"certificate"`
	Key         string `mapstructure:"key"`
	// Sessions end after IdleTimeout without a request, and after
	// SessionLifetime in any case.
	IdleTimeout     time.Duration `mapstructure:"idle_timeout"`
	SessionLifetime time.Duration `mapstructure:"session_lifetime"`
	// LockoutAfter consecutive failed logins lock an account for LockoutFor
	// and end its sessions.
	LockoutAfter int           `mapstructure:"lockout_after"`
	LockoutFor   time.Duration `mapstructure:"lockout_for"`
	// LoginsPerMinute bounds login attempts per source address.
	LoginsPerMinute int `mapstructure:"logins_per_minute"`
	// OIDC is admin login through an OpenID provider (consoleoidcwire.go).
	OIDC ConsoleOIDCConfig `mapstructure:"oidc"`
}

func (c ConsoleConfig) validate() error {
	if c.Listen == "" {
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("console.listen: %w", err))
	}
	if (c.Certificate == "") != (c.Key == "") {
		errs = append(errs, errors.New("console.certificate: certificate and key go together"))
	}
	if c.IdleTimeout <= 0 || c.SessionLifetime <= 0 || c.IdleTimeout > c.SessionLifetime {
		errs = append(errs, errors.New("console: idle_timeout and session_lifetime must be positive, idle no longer than the lifetime"))
	}
	if c.LockoutAfter < 1 || c.LockoutFor <= 0 || c.LoginsPerMinute < 1 {
		errs = append(errs, errors.New("console: lockout_after, lockout_for and logins_per_minute must be positive"))
	}
	errs = append(errs, c.OIDC.validate())
	return errors.Join(errs...)
}

// consoleService is the running console: its HTTPS listener and server.
type consoleService struct {
	c   *console.Console
	ln  net.Listener
	srv *http.Server
}

// startConsole builds the console and binds its listener (New); Run
// serves it with the other listeners.
func (a *Appliance) startConsole() error {
	cc := a.cfg.Console
	if cc.Listen == "" {
		return nil
	}
	tlsConf, err := a.consoleTLS(cc)
	if err != nil {
		return err
	}
	path := a.cfg.Activity.Path
	if path == "" {
		path = filepath.Join(a.cfg.StateDir, "activity.db")
	}
	caps := a.cfg.Session.capabilities()
	sso, err := a.consoleOIDC()
	if err != nil {
		return err
	}
	c, err := console.New(console.Options{
		OIDC:            sso,
		StateDir:        a.cfg.StateDir,
		Activity:        a.activity.store,
		ActivityPath:    path,
		PolicyDir:       a.cfg.Policy.Dir,
		Capabilities:    func() policy.Capabilities { return caps },
		Reload:          a.reloadFromConsole, // policies and device CAs (consoledevicewire.go)
		Devices:         a.consoleDevices(),
		Settings:        a.consoleSettings(),
		Components:      a.consoleComponents,
		SNMPUsers:       a.consoleSNMPUsers(),
		Log:             a.log.With("component", "console"),
		IdleTimeout:     cc.IdleTimeout,
		SessionLifetime: cc.SessionLifetime,
		LockoutAfter:    cc.LockoutAfter,
		LockoutFor:      cc.LockoutFor,
		LoginsPerMinute: cc.LoginsPerMinute,
		ManagementHosts: consoleHosts(cc),
		Discovered:      a.discoveredForConsole,
	})
	if err != nil {
		return err
	}
	ln, err := a.listenTCP("console.listen", cc.Listen)
	if err != nil {
		_ = c.Close()
		return fmt.Errorf("console listener: %w", err)
	}
	a.console = &consoleService{c: c, ln: tls.NewListener(ln, tlsConf), srv: &http.Server{
		Handler:           c.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}}
	a.closers = append(a.closers, func() {
		_ = a.console.ln.Close()
		if err := a.console.c.Close(); err != nil {
			a.log.Error("console close", "err", err)
		}
	})
	return nil
}

// consoleTLS serves the admin's certificate, or leaves from the appliance
// CA for the listen address and console.names (nothing else: a client
// asking for another name gets the listen address's).
func (a *Appliance) consoleTLS(cc ConsoleConfig) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if cc.Certificate != "" {
		cert, err := tls.LoadX509KeyPair(cc.Certificate, cc.Key)
		if err != nil {
			return nil, fmt.Errorf("console.certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
		return conf, nil
	}
	host, _, _ := net.SplitHostPort(cc.Listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	allowed := map[string]bool{strings.ToLower(host): true}
	for _, n := range cc.Names {
		allowed[strings.ToLower(strings.TrimSuffix(n, "."))] = true
	}
	conf.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		name := strings.ToLower(h.ServerName)
		if !allowed[name] {
			name = host
		}
		return a.certs.Certificate(name)
	}
	return conf, nil
}

// reloadPolicies is the console's reload: the SIGHUP path, with the error
// handed back to the admin who saved.
func (a *Appliance) reloadPolicies() error {
	if a.cfg.Policy.Dir == "" {
		return errors.New("policy.dir is not set")
	}
	if err := a.policies.reload(); err != nil {
		a.log.Error("reload from the console refused, running policies kept", "err", err)
		return err
	}
	a.log.Info("policies reloaded", "dir", a.cfg.Policy.Dir, "by", "console")
	return nil
}

// serveConsole is Run's part: serve until the listener closes.
func (a *Appliance) serveConsole() error {
	if a.console == nil {
		return nil
	}
	a.log.Info("console listening", "addr", "https://"+a.console.ln.Addr().String()+"/")
	return ignoreClosed(a.console.srv.Serve(a.console.ln))
}

// ConsoleAddr is where the console listens ("" without one).
func (a *Appliance) ConsoleAddr() string {
	if a.console == nil {
		return ""
	}
	return a.console.ln.Addr().String()
}

// consoleRedirect sends console paths asked of the plain-HTTP management
// port to the console over HTTPS.
func (a *Appliance) consoleRedirect(mux *http.ServeMux) {
	if a.console == nil {
		return
	}
	_, port, _ := net.SplitHostPort(a.console.ln.Addr().String())
	redirect := func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		http.Redirect(w, r, "https://"+host+":"+port+r.URL.RequestURI(), http.StatusPermanentRedirect)
	}
	for _, p := range []string{"GET /{$}", "/login", "/setup", "/dashboard", "/activity", "/policies", "/apps", "/devices", "/settings", "/changes", "/audit", "/account", "/users", "/api/v1/", "/static/"} {
		mux.HandleFunc(p, redirect)
	}
}
