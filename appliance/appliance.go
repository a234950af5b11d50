package appliance

import (
	"context"
	"crypto/x509"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portcullis-gw/portcullis/agent"
	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy"
	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// grafanaDashboard is the dashboard shipped with the appliance, served at
// /grafana-dashboard.json on the management address.
//
//go:embed assets/grafana-dashboard.json
var grafanaDashboard []byte

// Appliance is one running gateway: CA, proxy pipeline, listeners, kernel
// datapath and management endpoints.
type Appliance struct {
	cfg       *Config
	log       *slog.Logger
	accessOut *bufferedLog
	// accessFile is accessOut's file when log.access names one.
	accessFile *accessFile

	ca       *proxy.CA
	certs    *proxy.CertStore
	proxy    *proxy.Server
	datapath *agent.Agent
	policies *policyEnforcer
	activity *activityRecorder
	// clients classifies clients (browser or native app).
	clients *clientKinds
	// certCheck checks upstream chains' keys and revocation.
	certCheck *certcheck.Checker
	// exporters deliver activity events to their sinks (exportwire.go).
	exporters *exporterSet
	registry  *prometheus.Registry
	usage     *usageCounters // per-mode and per-app counters for SNMP
	snmp      *snmpService   // nil unless snmp.agentx_socket is set
	// console is the web console; nil unless console.listen is set.
	console *consoleService
	// live are the settings taken again on reload (consolesettingswire.go).
	live liveSettings
	// restartReq ends Run for a restart (the console's, under systemd).
	restartReq chan struct{}

	transparent []net.Listener
	explicitLn  net.Listener
	suffixLn    net.Listener
	mgmtLn      net.Listener
	mgmt        *http.Server
	closers     []func()
	idle        *idleReleaser // gives a burst's heap back once traffic stops
}

// New prepares everything that can fail before any traffic is taken: the CA,
// the upstream roots, the listeners and, last, the datapath. On error nothing
// is left behind and the error says which step failed.
func New(cfg *Config, logOut io.Writer) (_ *Appliance, err error) {
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	// Not the named result: every "return nil, err" sets that to nil before
	// the deferred undo runs.
	a := &Appliance{cfg: cfg, log: slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level})), restartReq: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			a.undoStart()
		}
	}()

	if a.ca, err = proxy.LoadOrCreateCA(filepath.Join(cfg.StateDir, "ca")); err != nil {
		return nil, err
	}
	a.certs = proxy.NewCertStore(a.ca, proxy.CertStoreOptions{})
	a.closers = append(a.closers, a.certs.Close)

	roots, err := upstreamRoots(&cfg.Upstream)
	if err != nil {
		return nil, err
	}
	if a.certCheck, err = newCertChecker(&cfg.Upstream); err != nil {
		return nil, err
	}
	withUploads := withUploadedDevices(cfg.Devices, cfg.StateDir) // consoledevicewire.go
	devices, err := deviceCerts(&withUploads, a.certCheck)
	if err != nil {
		return nil, err
	}
	static, err := newAccessDecider(cfg.Access)
	if err != nil {
		return nil, err
	}
	if a.policies, err = newPolicyEnforcer(cfg.Policy.Dir, cfg.Session.capabilities(), static); err != nil {
		return nil, err
	}
	if devices == nil {
		// No device CA yet: the proxy still gets the device-certificate
		// state (its listeners ask for nothing), so the first CA uploaded
		// takes effect on reload (consoledevicewire.go).
		devices = &proxy.ClientCertConfig{Checker: a.certCheck, UserFrom: deviceUserFrom[cfg.Devices.UserFrom],
			Policy: certcheck.ClientPolicy{CheckCRL: cfg.Devices.CheckCRL, RequireCRL: cfg.Devices.RequireCRL}}
	}
	a.policies.setDevices(devices.CAs != nil, devices.UserFrom != nil)
	if a.activity, err = openActivity(cfg); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() {
		if err := a.activity.Close(); err != nil {
			a.log.Error("activity store close", "err", err)
		}
	})
	a.activity.appOf = appOfPolicies(a.policies)
	a.policies.alerts = newAlerter(a.raiseAlert)
	a.closers = append(a.closers, a.policies.alerts.close)
	if a.exporters, err = a.newExporterSet(cfg); err != nil {
		return nil, err
	}
	if a.accessOut, a.accessFile, err = openAccessLog(cfg.Log, logOut); err != nil {
		return nil, err
	}
	a.accessOut.onError = func(err error) { a.log.Warn("access log", "err", err) }
	if a.accessFile != nil {
		a.accessFile.onError = a.accessOut.onError
	}
	a.usage = newUsageCounters()
	suffix, err := suffixConfig(context.Background(), cfg, a.policies, roots)
	if err != nil {
		return nil, err
	}
	sessionCfg, err := a.sessionConfig()
	if err != nil {
		return nil, err
	}
	identityCfg, err := identityConfig(context.Background(), cfg, a.policies, roots)
	if err != nil {
		return nil, err
	}
	if a.clients, err = newClientKinds(cfg.Clients.File); err != nil {
		return nil, err
	}
	a.proxy, err = proxy.NewServer(proxy.Config{
		Session:          sessionCfg,
		Clients:          a.clients.proxyConfig(&cfg.Clients),
		Suffix:           suffix,
		Identity:         identityCfg,
		ClientCerts:      devices,
		Certs:            a.certs,
		Conn:             a.policies,
		Request:          a.policies,
		Recorder:         &usageRecorder{next: a.activity, usage: a.usage, appOf: appOfPolicies(a.policies)},
		HoldForRecord:    a.activity.strict && cfg.Activity.Hold.holds(),
		UpstreamRoots:    roots,
		UpstreamVerify:   upstreamVerify(a.certCheck),
		TLSPorts:         cfg.Transparent.TLSPorts,
		HandshakeTimeout: cfg.Timeouts.Handshake,
		IdleTimeout:      cfg.Timeouts.Idle,
		DialTimeout:      cfg.Upstream.DialTimeout,
		Hosts:            cfg.Hosts,
		AccessLog:        slog.New(newAccessHandler(a.accessOut)),
		Log:              a.log,

		MaxHeaderBytes:       cfg.Limits.MaxHeaderBytes,
		MaxHeaderCount:       cfg.Limits.MaxHeaderCount,
		MaxConnsPerClient:    cfg.Limits.MaxConnsPerClient,
		ReadHeaderTimeout:    cfg.Limits.ReadHeaderTimeout,
		BodyReadTimeout:      cfg.Limits.BodyReadTimeout,
		UpstreamIdleTimeout:  cfg.Limits.UpstreamIdleTimeout,
		MaxConcurrentStreams: cfg.Limits.MaxConcurrentStreams,
		MaxStreamResets:      cfg.Limits.MaxStreamResets,
		UpgradeLimits:        cfg.Limits.upgradeLimits(),
	})
	if err != nil {
		return nil, err
	}

	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(newCertCheckCollector(a.certCheck, a.proxy.DeviceStats()), newSessionCollector(a.proxy.SessionStats()))
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newProxyCollector(&a.proxy.Stats, a.certs), newActivityCollector(a.activity.store))
	a.idle = newIdleReleaser() // idlememory.go
	a.idle.release = func() {
		if err := a.activity.store.ReleaseMemory(); err != nil {
			a.log.Warn("idle memory release", "err", err)
		}
		freeIdleHeap()
	}
	a.registry.MustRegister(a.idle.collector())
	a.registry.MustRegister(a.accessOut.collector())
	if a.accessFile != nil {
		a.registry.MustRegister(a.accessFile.collectors()...)
	}

	if cfg.Transparent.Enabled {
		if err := a.listenTransparent(); err != nil {
			return nil, err
		}
	}
	if cfg.Explicit.Enabled {
		if a.explicitLn, err = a.listenTCP("explicit.listen", cfg.Explicit.Listen); err != nil {
			return nil, fmt.Errorf("explicit listener: %w", err)
		}
	}
	if suffix != nil {
		if a.suffixLn, err = a.listenTCP("suffix.listen", cfg.Suffix.Listen); err != nil {
			return nil, fmt.Errorf("suffix listener: %w", err)
		}
	}
	if a.mgmtLn, err = a.listenTCP("management.listen", cfg.Management.Listen); err != nil {
		return nil, fmt.Errorf("management listener: %w", err)
	}
	if err := a.startConsole(); err != nil {
		return nil, err
	}
	if cfg.Transparent.Enabled && cfg.Datapath.Enabled {
		if err := a.startDatapath(); err != nil {
			return nil, err
		}
	}
	a.mgmt = &http.Server{Handler: a.managementHandler(), ReadHeaderTimeout: 10 * time.Second}
	return a, nil
}

func withFD(ln *net.TCPListener, fn func(fd uintptr) error) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(fd) }); err != nil {
		return err
	}
	return ferr
}

// Run serves until ctx is cancelled, then shuts down within a bounded time.
func (a *Appliance) Run(ctx context.Context) error {
	// Before any traffic is served: request paths may call notifyAlert.
	a.startSNMP()
	// Start-up is over: its pages of the executable go back to the page
	// cache before anything is served (textpages.go); serving faults back
	// the ones it uses.
	if kib, err := releaseStartupPages(); err != nil {
		a.log.Warn("release start-up pages of the executable", "err", err)
	} else {
		a.log.Debug("released start-up pages of the executable", "kib", kib)
	}
	errc := make(chan error, len(a.transparent)+4)
	var wg sync.WaitGroup
	serve := func(fn func() error) {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- fn() }()
	}
	for _, ln := range a.transparent {
		serve(func() error { return a.proxy.Serve(ln) })
	}
	if a.explicitLn != nil {
		serve(func() error { return a.proxy.ServeExplicit(a.explicitLn) })
	}
	if a.suffixLn != nil {
		serve(func() error { return a.proxy.ServeSuffix(a.suffixLn) })
	}
	serve(func() error { return ignoreClosed(a.mgmt.Serve(a.mgmtLn)) })
	if a.console != nil {
		serve(a.serveConsole)
	}
	a.log.Info("portcullis running", "ca", a.ca.Certificate().Subject.CommonName,
		"management", a.ManagementAddr(), "datapath", a.datapath != nil)
	expCtx, stopExport := context.WithCancel(context.Background())
	a.exporters.start(expCtx)
	// The idle releaser stops before the store closes (closeAll).
	idleCtx, stopIdle := context.WithCancel(context.Background())
	idleDone := make(chan struct{})
	go func() { a.idle.run(idleCtx); close(idleDone) }()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// Listeners bound, datapath attached, serving, SIGHUP handled: ready.
	stopping := a.notifyReady()
	var err error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case err = <-errc:
			break wait
		case <-hup:
			a.reload()
		case <-a.restartReq:
			err = errRestartRequested
			break wait
		}
	}
	grace := a.cfg.Timeouts.ShutdownGrace
	a.log.Info("portcullis stopping", "grace", grace)
	stopping()
	// The listeners close first (new connections meet the datapath's fail
	// mode); requests in flight have the grace period to end. The activity
	// store closes only after that (closeAll), so every event of a finished
	// response is written before the process exits.
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	drain := errors.Join(a.proxy.Close(sctx), a.mgmt.Shutdown(sctx))
	if a.console != nil {
		drain = errors.Join(drain, a.console.srv.Shutdown(sctx))
	}
	if errors.Is(drain, context.DeadlineExceeded) {
		// Cutting what outlived the grace period is the configured outcome,
		// not a failure of the stop.
		a.log.Warn("shutdown grace period over: connections still open were cut", "grace", grace,
			"tunnels_cut", a.proxy.Stats.TunnelsCut.Load())
		drain = nil
	}
	err = errors.Join(err, drain)
	a.stopSNMP()
	stopExport()
	a.exporters.wait()
	stopIdle()
	<-idleDone
	a.closeAll()
	wg.Wait()
	return err
}

// ManagementAddr is where /metrics and /healthz are served.
func (a *Appliance) ManagementAddr() string { return a.mgmtLn.Addr().String() }

// closeAll releases in reverse order of creation. The datapath is kept or
// detached as configured: kept, the pinned program goes on deciding (fail
// closed or open) until the next start takes it over.
func (a *Appliance) closeAll() {
	for _, ln := range append(a.transparent, a.explicitLn, a.suffixLn, a.mgmtLn) {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if a.datapath != nil {
		var err error
		if a.cfg.Datapath.OnStop == "detach" {
			err = a.datapath.Detach()
		} else {
			err = a.datapath.Close()
		}
		if err != nil {
			a.log.Error("datapath stop", "err", err)
		}
		a.datapath = nil
	}
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
	if a.accessOut != nil {
		_ = a.accessOut.Close()
	}
}

func (a *Appliance) managementHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelError)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	if a.cfg.Management.PProf {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /grafana-dashboard.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(grafanaDashboard)
	})
	a.passThroughHandlers(mux)
	mux.HandleFunc("GET /ca.crt", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-x509-ca-cert")
		_, _ = w.Write(a.certs.CA().CertPEM()) // the CA in force (reloadCA)
	})
	a.consoleRedirect(mux)
	mux.HandleFunc("GET /discovered", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.proxy.DiscoveredDomains())
	})
	return mux
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// rootsWith is the system pool plus the admin's extra roots (the config key
// names them in errors). It fails on an unreadable file or one without a
// certificate, so a typo never silently leaves a peer unverifiable.
func rootsWith(key string, files []string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	return rootsFrom(key, pool, files)
}

// rootsFrom adds the PEM files to pool.
func rootsFrom(key string, pool *x509.CertPool, files []string) (*x509.CertPool, error) {
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", key, f)
		}
	}
	return pool, nil
}

// openAccessLog opens the access log c.Access names: stdout, stderr
// (fallback) or a file rotated by size (accessFile, returned too so its
// counters can be registered).
func openAccessLog(c LogConfig, fallback io.Writer) (*bufferedLog, *accessFile, error) {
	switch strings.ToLower(c.Access) {
	case "", "stdout":
		return newBufferedLog(nopCloser{os.Stdout}), nil, nil
	case "stderr":
		return newBufferedLog(nopCloser{fallback}), nil, nil
	}
	f, err := openAccessFile(c.Access, int64(c.AccessMaxMiB)<<20, c.AccessFiles)
	if err != nil {
		return nil, nil, fmt.Errorf("log.access: %w", err)
	}
	return newBufferedLog(f), f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// accessDecider is the connection-level access decision until the policy
// engine takes over: bypass and block lists of server names.
type accessDecider struct {
	bypass, block *policy.DomainSet
}

func newAccessDecider(c AccessConfig) (*accessDecider, error) {
	bypass, err := policy.NewDomainSet(c.BypassHosts)
	if err != nil {
		return nil, fmt.Errorf("access.bypass_hosts: %w", err)
	}
	block, err := policy.NewDomainSet(c.BlockHosts)
	if err != nil {
		return nil, fmt.Errorf("access.block_hosts: %w", err)
	}
	return &accessDecider{bypass: bypass, block: block}, nil
}

func (d *accessDecider) DecideConn(ci *proxy.ConnInfo) proxy.ConnDecision {
	name := ci.ServerName()
	switch {
	case d.block.Match(name):
		return proxy.ConnDecision{Verdict: proxy.VerdictBlock, Reason: "access.block_hosts"}
	case d.bypass.Match(name):
		return proxy.ConnDecision{Verdict: proxy.VerdictBypass, Reason: "access.bypass_hosts"}
	}
	return proxy.ConnDecision{Verdict: proxy.VerdictIntercept}
}

var _ proxy.ConnDecider = (*accessDecider)(nil)

// blocks reports whether a Host header names a host of access.block_hosts.
func (d *accessDecider) blocks(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return d.block.Match(strings.ToLower(strings.TrimSuffix(host, ".")))
}

func agentConfig(d DatapathConfig) agent.Config {
	return agent.Config{
		Interface:      d.Interface,
		ClientPrefixes: d.ClientPrefixes,
		InterceptPorts: d.InterceptPorts,
		BypassPrefixes: d.BypassPrefixes,
		DropQUIC:       d.DropQUIC,
		FailOpen:       d.FailOpen,
		PinDir:         d.PinDir,
		Attach:         agent.AttachMode(d.Attach),
		Steering:       agent.Steering(d.Steering),
	}
}

// reload re-reads what can change without a restart: the policies. A bad
// directory is reported and the running policies stay.
func (a *Appliance) reload() {
	a.reloadCA() // careload.go
	if err := a.clients.reload(); err != nil {
		a.log.Error("reload refused, running client data kept", "err", err)
	} else if a.cfg.Clients.File != "" {
		a.log.Info("client data reloaded", "file", a.cfg.Clients.File)
	}
	if err := a.reloadConfig(); err != nil { // consolesettingswire.go
		a.log.Error("reload refused, running device CAs and settings kept", "err", err)
	}
	if a.cfg.Policy.Dir == "" {
		return
	}
	if err := a.policies.reload(); err != nil {
		a.log.Error("reload refused, running policies kept", "err", err)
		return
	}
	a.log.Info("policies reloaded", "dir", a.cfg.Policy.Dir)
}
