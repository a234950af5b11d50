package appliance

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/agent"
	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/appliance/snmp"
	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy"
)

// SNMPConfig is the `snmp:` section: the AgentX subagent that serves
// PORTCULLIS-MIB through the local snmpd and sends its notifications.
type SNMPConfig struct {
	// AgentXSocket is snmpd's AgentX master socket; empty disables SNMP.
	AgentXSocket string `mapstructure:"agentx_socket"`
	// Reconnect is the delay between attempts to reach snmpd.
	Reconnect time.Duration `mapstructure:"reconnect"`
	// NotifyInterval rate-limits portcullisFailOpen and
	// portcullisActivityDegraded: at most one of each per interval, the
	// fail-open one carrying how many events it stands for.
	NotifyInterval time.Duration `mapstructure:"notify_interval"`
	// UsersFile is the snmpd configuration fragment of SNMPv3 users the
	// console manages (snmpuserswire.go); snmpd.conf includes it
	// (includeFile). Empty: the console does not manage users.
	UsersFile string `mapstructure:"users_file"`
	// SnmpdPIDFile is snmpd's pid file: after a change of the users the
	// appliance sends snmpd SIGHUP to read the fragment again. Empty: the
	// reload is left to something watching the file (a systemd path
	// unit, packaging/snmp/README.md).
	SnmpdPIDFile string `mapstructure:"snmpd_pid_file"`
}

func (c SNMPConfig) validate() error {
	var errs []error
	if c.UsersFile != "" && !filepath.IsAbs(c.UsersFile) {
		errs = append(errs, errors.New("snmp.users_file: must be an absolute path (snmpd's includeFile names the same file)"))
	}
	if c.SnmpdPIDFile != "" && c.UsersFile == "" {
		errs = append(errs, errors.New("snmp.snmpd_pid_file: set only with snmp.users_file"))
	}
	if c.AgentXSocket == "" {
		return errors.Join(errs...)
	}
	if c.Reconnect <= 0 {
		errs = append(errs, errors.New("snmp.reconnect: must be positive"))
	}
	if c.NotifyInterval <= 0 {
		errs = append(errs, errors.New("snmp.notify_interval: must be positive"))
	}
	return errors.Join(errs...)
}

// maxApps bounds the per-app table. App ids come from the policy catalog,
// not from traffic, so this is only a backstop against a runaway catalog.
const maxApps = 4096

// usageCounters are the per-mode decision and per-app counters the proxy's
// own Stats do not keep. They are fed from the activity recorder path, one
// update per request record.
type usageCounters struct {
	modes [3]modeUsage // indexed by pcModeIndex-1

	mu    sync.RWMutex
	byID  map[string]*appUsage
	order []*appUsage // by first sight: index i is pcAppIndex i+1
}

type modeUsage struct{ allowed, monitored, blocked atomic.Uint64 }

type appUsage struct {
	id                           string
	requests, blocked, monitored atomic.Uint64
	bytesUp, bytesDown           atomic.Uint64
}

func newUsageCounters() *usageCounters {
	return &usageCounters{byID: map[string]*appUsage{}}
}

// observe counts one record. Connection records (no method) are left to
// proxy.Stats; requests to hosts outside the catalog have no app row.
func (u *usageCounters) observe(rec *proxy.Record, app string) {
	if rec.Method == "" {
		return
	}
	if m := modeIndex(rec.Mode.String()); m > 0 {
		mc := &u.modes[m-1]
		switch rec.Decision {
		case "allow":
			mc.allowed.Add(1)
		case "monitor":
			mc.monitored.Add(1)
		case "block":
			mc.blocked.Add(1)
		}
	}
	if app == "" {
		return
	}
	a := u.app(app)
	if a == nil {
		return
	}
	a.requests.Add(1)
	switch rec.Decision {
	case "block":
		a.blocked.Add(1)
	case "monitor":
		a.monitored.Add(1)
	}
	if rec.BytesIn > 0 {
		a.bytesUp.Add(uint64(rec.BytesIn))
	}
	if rec.BytesOut > 0 {
		a.bytesDown.Add(uint64(rec.BytesOut))
	}
}

func (u *usageCounters) app(id string) *appUsage {
	u.mu.RLock()
	a := u.byID[id]
	u.mu.RUnlock()
	if a != nil {
		return a
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if a = u.byID[id]; a == nil && len(u.order) < maxApps {
		a = &appUsage{id: id}
		u.byID[id] = a
		u.order = append(u.order, a)
	}
	return a
}

func (u *usageCounters) apps() []*appUsage {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return append([]*appUsage(nil), u.order...)
}

var modeNames = [...]string{"transparent", "explicit", "suffix"}

// modeIndex is the pcModeIndex of a proxy mode name, 0 if unknown.
func modeIndex(name string) uint32 {
	for i, n := range modeNames {
		if n == name {
			return uint32(i) + 1
		}
	}
	return 0
}

// usageRecorder counts each record, then hands it to the activity recorder.
type usageRecorder struct {
	next  proxy.Recorder
	usage *usageCounters
	appOf func(host string) string
}

var _ proxy.Recorder = (*usageRecorder)(nil)

func (r *usageRecorder) Admit() error { return r.next.Admit() }

func (r *usageRecorder) Record(rec proxy.Record) error {
	app := ""
	if rec.Method != "" && r.appOf != nil {
		app = r.appOf(rec.Host)
	}
	r.usage.observe(&rec, app)
	return r.next.Record(rec)
}

// RecordDurable counts like Record and hands the record on for a durable
// wait; the proxy only asks when the next recorder can do that.
func (r *usageRecorder) RecordDurable(rec proxy.Record) (func() error, error) {
	d, ok := r.next.(proxy.DurableRecorder)
	if !ok {
		return nil, errors.New("activity recorder cannot report durability")
	}
	app := ""
	if rec.Method != "" && r.appOf != nil {
		app = r.appOf(rec.Host)
	}
	r.usage.observe(&rec, app)
	return d.RecordDurable(rec)
}

// appOfPolicies names the catalog app serving a host with the running
// policy engine (the built-in catalog without policies); "" for hosts
// outside the catalog.
func appOfPolicies(p *policyEnforcer) func(string) string {
	return func(host string) string {
		e := p.engine.Load()
		if e == nil {
			var err error
			if e, err = catalogOnly(); err != nil {
				return ""
			}
		}
		if a := e.App(host); a != nil {
			return a.ID
		}
		return ""
	}
}

// snmpSources are what the MIB reports, read at request time. Nil sources
// (no datapath, no cert store) leave their objects out.
type snmpSources struct {
	version  string
	started  time.Time
	proxy    *proxy.Stats
	certs    *proxy.CertStore
	activity *activity.Store
	// datapath reads the steering program's counters; nil when the
	// appliance runs without a datapath.
	datapath func() (agent.Counters, error)
	// connectionsOnly: the datapath is route steering, which counts
	// connections (steered, refused) and no packets, so the per-packet
	// objects are not served rather than served as zero.
	connectionsOnly bool
	failOpen        bool
	usage           *usageCounters
}

// snapshot is the snmp.Provider: every served instance, in OID order.
func (s *snmpSources) snapshot() []snmp.Var {
	vs := make([]snmp.Var, 0, 128)
	add := func(obj snmp.OID, v snmp.Value) { vs = append(vs, snmp.Scalar(obj, v)) }
	c64 := snmp.Counter64

	add(snmp.ObjVersion, snmp.DisplayString(s.version, 255))
	add(snmp.ObjUptime, snmp.TimeTicks(uint32(time.Since(s.started)/(10*time.Millisecond))))
	var dp agent.Counters
	attached := false
	if s.datapath != nil {
		var err error
		dp, err = s.datapath()
		attached = err == nil
	}
	add(snmp.ObjDatapathAttached, snmp.TruthValue(attached))
	failMode := int32(1)
	if s.failOpen {
		failMode = 2
	}
	add(snmp.ObjFailMode, snmp.Integer(failMode))
	if s.activity != nil {
		st := s.activity.Stats()
		add(snmp.ObjActivityHealthy, snmp.TruthValue(st.Healthy))
		add(snmp.ObjActivityQueueDepth, snmp.Gauge32(clamp32(int64(st.QueueDepth))))
		add(snmp.ObjActivityQueueCapacity, snmp.Gauge32(clamp32(int64(st.QueueCapacity))))
		add(snmp.ObjActivityCommitLag, snmp.Gauge32(clamp32(st.LastCommitLag.Milliseconds())))
		add(snmp.ObjActivityWritten, c64(st.Written))
		add(snmp.ObjActivityDropped, c64(st.Dropped))
		add(snmp.ObjActivityRefused, c64(st.Refused))
		add(snmp.ObjActivityLost, c64(st.Lost))
		add(snmp.ObjActivityWriteErrors, c64(st.WriteErrors))
	}
	if attached {
		add(snmp.ObjDpSteered, c64(dp.Steered))
	}
	if attached && !s.connectionsOnly {
		add(snmp.ObjDpEstablished, c64(dp.Established))
		add(snmp.ObjDpBypassed, c64(dp.Bypassed))
	}
	if attached {
		add(snmp.ObjDpFailClosedSyns, c64(dp.NoListenerRefused))
	}
	if attached && !s.connectionsOnly {
		add(snmp.ObjDpFailOpenSyns, c64(dp.NoListenerPassed))
		add(snmp.ObjDpFailClosedOrphans, c64(dp.OrphanRefused))
		add(snmp.ObjDpFailOpenOrphans, c64(dp.OrphanPassed))
		add(snmp.ObjDpQuicDropped, c64(dp.QUICDropped))
		add(snmp.ObjDpFragmentDropped, c64(dp.FragmentDropped))
		add(snmp.ObjDpNotIntercepted, c64(dp.NotIntercepted))
		add(snmp.ObjDpMalformed, c64(dp.Malformed))
	}
	if attached {
		add(snmp.ObjDpAssignErrors, c64(dp.AssignErrors))
	}
	if p := s.proxy; p != nil {
		add(snmp.ObjProxyConnections, c64(p.ConnsAccepted.Load()))
		add(snmp.ObjProxyNotTLS, c64(p.ConnsNotTLS.Load()))
		add(snmp.ObjProxyHelloMalformed, c64(p.HelloMalformed.Load()))
		add(snmp.ObjProxyHelloIncomplete, c64(p.HelloIncomplete.Load()))
		add(snmp.ObjProxyTLSHandshakeFailures, c64(p.HandshakeFailed.Load()))
		add(snmp.ObjProxyIntercepted, c64(p.Intercepted.Load()))
		add(snmp.ObjProxyBypassed, c64(p.Bypassed.Load()))
		add(snmp.ObjProxyConnectionsBlocked, c64(p.Blocked.Load()))
		add(snmp.ObjProxyRequests, c64(p.Requests.Load()))
		add(snmp.ObjProxyRequestsBlocked, c64(p.RequestsBlocked.Load()))
		add(snmp.ObjProxyMisdirected, c64(p.Misdirected.Load()))
		add(snmp.ObjProxyUpstreamUnverified, c64(p.UpstreamUnverified.Load()))
		add(snmp.ObjProxyUpstreamErrors, c64(p.UpstreamErrors.Load()))
		add(snmp.ObjProxyRefusedUnrecorded, c64(p.RefusedUnrecorded.Load()))
		add(snmp.ObjProxyRecordsFailed, c64(p.RecordsFailed.Load()))
	}
	if s.certs != nil {
		cs := s.certs.Stats()
		add(snmp.ObjProxyLeafCacheHits, c64(cs.Hits))
		add(snmp.ObjProxyLeafCacheMisses, c64(cs.Misses))
		add(snmp.ObjProxyLeafMints, c64(cs.Mints))
		add(snmp.ObjProxyKeyPoolEmpty, c64(cs.PoolEmpty))
	}
	if u := s.usage; u != nil {
		// Tables are column by column, rows in index order, which is
		// already OID order.
		cols := []struct {
			col snmp.OID
			val func(m *modeUsage) snmp.Value
		}{
			{snmp.ColModeAllowed, func(m *modeUsage) snmp.Value { return c64(m.allowed.Load()) }},
			{snmp.ColModeMonitored, func(m *modeUsage) snmp.Value { return c64(m.monitored.Load()) }},
			{snmp.ColModeBlocked, func(m *modeUsage) snmp.Value { return c64(m.blocked.Load()) }},
		}
		for i, name := range modeNames {
			vs = append(vs, snmp.Cell(snmp.ColModeName, uint32(i)+1, snmp.OctetString(name)))
		}
		for _, c := range cols {
			for i := range u.modes {
				vs = append(vs, snmp.Cell(c.col, uint32(i)+1, c.val(&u.modes[i])))
			}
		}
		apps := u.apps()
		appCols := []struct {
			col snmp.OID
			val func(a *appUsage) snmp.Value
		}{
			{snmp.ColAppID, func(a *appUsage) snmp.Value { return snmp.DisplayString(a.id, 255) }},
			{snmp.ColAppRequests, func(a *appUsage) snmp.Value { return c64(a.requests.Load()) }},
			{snmp.ColAppBlocked, func(a *appUsage) snmp.Value { return c64(a.blocked.Load()) }},
			{snmp.ColAppMonitored, func(a *appUsage) snmp.Value { return c64(a.monitored.Load()) }},
			{snmp.ColAppBytesUp, func(a *appUsage) snmp.Value { return c64(a.bytesUp.Load()) }},
			{snmp.ColAppBytesDown, func(a *appUsage) snmp.Value { return c64(a.bytesDown.Load()) }},
		}
		for _, c := range appCols {
			for i, a := range apps {
				vs = append(vs, snmp.Cell(c.col, uint32(i)+1, c.val(a)))
			}
		}
	}
	return vs
}

func clamp32(v int64) uint32 {
	switch {
	case v < 0:
		return 0
	case v > int64(^uint32(0)):
		return ^uint32(0)
	}
	return uint32(v)
}

// snmpService runs the subagent and sends the appliance's notifications.
type snmpService struct {
	cfg      SNMPConfig
	log      *slog.Logger
	src      *snmpSources
	sub      *snmp.Subagent
	seenFile string // see watcher.seenFile

	failOpen *rateLimited
	degraded *rateLimited
	alerts   chan struct{} // bounds alert sends in flight

	cancel  context.CancelFunc
	mu      sync.Mutex // guards stopped against wg.Add racing stop's Wait
	stopped bool
	wg      sync.WaitGroup
}

func newSNMPService(cfg SNMPConfig, src *snmpSources, log *slog.Logger) *snmpService {
	s := &snmpService{cfg: cfg, log: log, src: src, alerts: make(chan struct{}, maxAlertsInFlight)}
	s.sub = &snmp.Subagent{Provider: src.snapshot, Descr: "Portcullis " + src.version, Retry: cfg.Reconnect, Logger: log}
	s.failOpen = &rateLimited{interval: cfg.NotifyInterval, send: s.sendFailOpen}
	s.degraded = &rateLimited{interval: cfg.NotifyInterval, send: s.sendDegraded}
	return s
}

// start runs the subagent and the watchers until stop.
func (s *snmpService) start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.sub.Run(ctx, s.cfg.AgentXSocket); err != nil {
			s.log.Error("snmp subagent", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.watch(ctx)
	}()
}

func (s *snmpService) stop() {
	if s.cancel == nil {
		return
	}
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.failOpen.close()
	s.degraded.close()
}

// watchInterval is how often the watchers look at the datapath's fail-open
// counters and the activity store's health.
const watchInterval = time.Second

// watch turns counter movements into notifications until ctx ends.
func (s *snmpService) watch(ctx context.Context) {
	w := &watcher{svc: s, seenFile: s.seenFile}
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		w.step()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watcher keeps what the last look saw: the datapath's fail-open packet
// count and whether the activity store was degraded.
type watcher struct {
	svc *snmpService
	// seenFile persists the last fail-open count seen, so packets the
	// pinned datapath forwarded uninspected while the appliance was down
	// (the main fail-open case) are notified at the next start. Empty:
	// not persisted, and only increases while running are notified.
	seenFile string

	haveBase     bool
	lastFailOpen uint64
	wasDegraded  bool
}

const (
	reasonFailOpenDown    = "datapath forwarded traffic uninspected while the appliance was down"
	reasonFailOpenRunning = "datapath forwarded traffic uninspected: no proxy listener"
)

func (w *watcher) step() {
	src := w.svc.src
	if src.datapath != nil {
		if c, err := src.datapath(); err == nil {
			n := c.NoListenerPassed + c.OrphanPassed
			switch {
			case !w.haveBase:
				// A stored count above n means the maps were recreated
				// (counters restarted at zero): nothing to report.
				if prev, ok := readSeen(w.seenFile); ok && n > prev {
					w.svc.failOpen.add(reasonFailOpenDown, n-prev)
				}
			case n > w.lastFailOpen:
				w.svc.failOpen.add(reasonFailOpenRunning, n-w.lastFailOpen)
			}
			if !w.haveBase || n != w.lastFailOpen {
				writeSeen(w.seenFile, n, w.svc.log)
			}
			w.lastFailOpen, w.haveBase = n, true
		}
	}
	if src.activity != nil {
		st := src.activity.Stats()
		degraded := !st.Healthy || (st.QueueCapacity > 0 && st.QueueDepth >= st.QueueCapacity)
		if degraded && !w.wasDegraded {
			w.svc.degraded.add("activity store degraded", 1)
		}
		w.wasDegraded = degraded
	}
}

func readSeen(path string) (uint64, bool) {
	if path == "" {
		return 0, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

// writeSeen replaces the file atomically, so a crash never leaves a torn
// count that would be misread as a huge delta.
func writeSeen(path string, n uint64, log *slog.Logger) {
	if path == "" {
		return
	}
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, []byte(strconv.FormatUint(n, 10)+"\n"), 0o600)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		log.Warn("snmp: cannot persist the fail-open count", "file", path, "err", err)
	}
}

func (s *snmpService) notify(trap snmp.OID, vbs []snmp.VarBind) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.sub.Notify(ctx, trap, vbs)
}

func (s *snmpService) sendFailOpen(reason string, count uint64) error {
	return s.notify(snmp.TrapFailOpen, []snmp.VarBind{
		snmp.Instance(snmp.ObjFailOpenReason, snmp.DisplayString(reason, 255)),
		snmp.Instance(snmp.ObjFailOpenCount, snmp.Gauge32(clamp32(int64(min(count, 1<<32-1))))),
	})
}

func (s *snmpService) sendDegraded(string, uint64) error {
	var vbs []snmp.VarBind
	if a := s.src.activity; a != nil {
		st := a.Stats()
		vbs = []snmp.VarBind{
			snmp.Instance(snmp.ObjActivityHealthy, snmp.TruthValue(st.Healthy)),
			snmp.Instance(snmp.ObjActivityQueueDepth, snmp.Gauge32(clamp32(int64(st.QueueDepth)))),
			snmp.Instance(snmp.ObjActivityCommitLag, snmp.Gauge32(clamp32(st.LastCommitLag.Milliseconds()))),
		}
	}
	return s.notify(snmp.TrapActivityDegraded, vbs)
}

// sendAlert sends portcullisAlert at once: alerts are already one per
// policy match, and the policy decides how often it alerts.
func (s *snmpService) sendAlert(policyID string, sev policy.Severity, user, app, msg string) error {
	return s.notify(snmp.TrapAlert, []snmp.VarBind{
		snmp.Instance(snmp.ObjAlertPolicyID, snmp.DisplayString(policyID, 255)),
		snmp.Instance(snmp.ObjAlertSeverity, snmp.Integer(severityValue(sev))),
		snmp.Instance(snmp.ObjAlertUser, snmp.DisplayString(user, 255)),
		snmp.Instance(snmp.ObjAlertApp, snmp.DisplayString(app, 255)),
		snmp.Instance(snmp.ObjAlertMessage, snmp.DisplayString(msg, 255)),
	})
}

func severityValue(s policy.Severity) int32 {
	switch s {
	case policy.SeverityLow:
		return snmp.SeverityLow
	case policy.SeverityMedium:
		return snmp.SeverityMedium
	case policy.SeverityHigh:
		return snmp.SeverityHigh
	}
	return snmp.SeverityInfo
}

// rateLimited sends at most one notification per interval. Events in
// between are summed and sent, with the latest reason, when the interval
// has passed; an event after a quiet interval goes out at once. A send that
// fails because snmpd is not connected keeps its count for the next try, so
// events at startup are reported once the subagent is registered.
type rateLimited struct {
	interval time.Duration
	send     func(reason string, count uint64) error

	mu       sync.Mutex
	pending  uint64
	reason   string
	last     time.Time // last send attempt
	timer    *time.Timer
	closed   bool
	inflight sync.WaitGroup
}

func (r *rateLimited) add(reason string, count uint64) {
	if count == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.pending += count
	r.reason = reason
	if r.timer != nil {
		return // a flush is already scheduled
	}
	wait := r.interval - time.Since(r.last)
	if wait <= 0 {
		r.flushLocked()
		return
	}
	r.timer = time.AfterFunc(wait, r.flush)
}

func (r *rateLimited) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timer = nil
	if !r.closed && r.pending > 0 {
		r.flushLocked()
	}
}

// flushLocked starts sending the pending count; the send runs outside the
// lock so callers on the traffic path never wait for snmpd.
func (r *rateLimited) flushLocked() {
	n, reason := r.pending, r.reason
	r.pending, r.last = 0, time.Now()
	r.inflight.Add(1)
	go func() {
		defer r.inflight.Done()
		if err := r.send(reason, n); errors.Is(err, snmp.ErrNotConnected) {
			r.mu.Lock()
			r.pending += n
			if r.timer == nil && !r.closed {
				r.timer = time.AfterFunc(r.interval, r.flush)
			}
			r.mu.Unlock()
		}
	}()
}

func (r *rateLimited) close() {
	r.mu.Lock()
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.mu.Unlock()
	r.inflight.Wait()
}

// buildVersion is the module version the binary was built from.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// startSNMP starts the subagent when snmp.agentx_socket is set. Called from
// Run once the pipeline and datapath exist; stopSNMP undoes it.
func (a *Appliance) startSNMP() {
	if a.cfg.SNMP.AgentXSocket == "" {
		return
	}
	src := &snmpSources{
		version:  buildVersion(),
		started:  time.Now(),
		proxy:    &a.proxy.Stats,
		certs:    a.certs,
		failOpen: a.cfg.Datapath.FailOpen,
		usage:    a.usage,
	}
	if a.activity != nil {
		src.activity = a.activity.store
	}
	if dp := a.datapath; dp != nil {
		src.datapath = dp.Counters
		src.connectionsOnly = !dp.Attachment().Steering.CountsPackets()
	}
	a.snmp = newSNMPService(a.cfg.SNMP, src, a.log.With("component", "snmp"))
	a.snmp.seenFile = filepath.Join(a.cfg.StateDir, "snmp-failopen-seen")
	a.snmp.start()
	a.log.Info("snmp subagent started", "agentx_socket", a.cfg.SNMP.AgentXSocket)
}

func (a *Appliance) stopSNMP() {
	if a.snmp != nil {
		a.snmp.stop()
	}
}

// notifyFailOpen reports traffic forwarded uninspected. It never blocks:
// notifications are rate-limited to one per snmp.notify_interval carrying
// the summed count. A no-op without SNMP.
func (a *Appliance) notifyFailOpen(reason string, count uint64) {
	if a.snmp != nil {
		a.snmp.failOpen.add(reason, count)
	}
}

// maxAlertsInFlight bounds alert notifications waiting for snmpd; past it
// alerts are dropped (and logged) rather than pile up goroutines.
const maxAlertsInFlight = 64

// notifyAlert sends portcullisAlert for a policy alert. It never blocks the
// caller; a failure (snmpd down or saturated) is logged. A no-op without
// SNMP.
func (a *Appliance) notifyAlert(policyID string, severity policy.Severity, user, app, msg string) {
	if a.snmp != nil {
		a.snmp.alert(policyID, severity, user, app, msg)
	}
}

func (s *snmpService) alert(policyID string, severity policy.Severity, user, app, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	select {
	case s.alerts <- struct{}{}:
	default:
		s.log.Warn("snmp alert notification dropped: too many in flight", "policy", policyID)
		return
	}
	s.wg.Add(1)
	go func() {
		defer func() { <-s.alerts; s.wg.Done() }()
		if err := s.sendAlert(policyID, severity, user, app, msg); err != nil {
			s.log.Warn("snmp alert notification not sent", "policy", policyID, "err", err)
		}
	}()
}
