package console

import (
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/policy"
)

//go:embed assets
var assets embed.FS

// Options are what the appliance gives the console.
type Options struct {
	// StateDir is the appliance's state_dir; the console keeps its files in
	// StateDir/console (0700).
	StateDir string
	// Activity is the running event store (searches, exports).
	Activity *activity.Store
	// ActivityPath is the store's file, opened read-only for aggregations.
	// Empty: the dashboard shows no charts.
	ActivityPath string
	// PolicyDir is the policy directory; empty: policies cannot be edited.
	PolicyDir string
	// Capabilities returns what the appliance can enforce, for validation.
	Capabilities func() policy.Capabilities
	// Reload asks the appliance to load the policy directory; its error is
	// shown to the admin who saved.
	Reload func() error
	// Health, when set, adds appliance facts to the dashboard (name → value).
	Health func() map[string]string
	// Components, when set, reports the state of each part of the
	// appliance for the dashboard's health panel (health.go).
	Components func() []Component
	Log        *slog.Logger

	// ManagementHosts are the console's own host names and addresses: a
	// change to what decides connections to them is risky, reverted
	// unless an admin confirms it within ConfirmTimeout (default 60 s).
	ManagementHosts []string

	ConfirmTimeout time.Duration

	// Discovered lists the domains the suffix proxy discovered; nil: none.
	Discovered func() []DiscoveredDomain

	IdleTimeout     time.Duration // default 30 minutes
	SessionLifetime time.Duration // default 12 hours
	LockoutAfter    int           // failed logins; default 5
	LockoutFor      time.Duration // default 15 minutes
	LoginsPerMinute int           // per source; default 10
	// OIDC, when set, adds "Sign in with single sign-on" (oidclogin.go).
	OIDC *OIDCOptions

	// Devices, when set, adds the devices and certificates page
	// (devices.go); Settings the settings page (settings.go).
	Devices  *DevicesOptions
	Settings *SettingsOptions
	// SNMPUsers, when set, lists and changes the SNMPv3 users on the
	// settings page (snmpusers.go).
	SNMPUsers *SNMPUsersOptions

	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Minute
	}
	if o.SessionLifetime <= 0 {
		o.SessionLifetime = 12 * time.Hour
	}
	if o.LockoutAfter <= 0 {
		o.LockoutAfter = 5
	}
	if o.LockoutFor <= 0 {
		o.LockoutFor = 15 * time.Minute
	}
	if o.LoginsPerMinute <= 0 {
		o.LoginsPerMinute = 10
	}
	if o.ConfirmTimeout <= 0 {
		o.ConfirmTimeout = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Capabilities == nil {
		o.Capabilities = func() policy.Capabilities { return policy.Capabilities{} }
	}
}

// Console serves the pages and the API. Create it with New, serve Handler,
// and Close it with the appliance.
type Console struct {
	opt      Options
	dir      string
	accounts *accounts
	sessions *sessions
	pending  *pendingLogins
	limiter  *loginLimiter
	audit    *auditLog
	revs     *revisions
	tray     *tray
	searches *savedSearches
	oidc     *oidcLogin // nil: no single sign-on
	ro       *sql.DB    // read-only connection to the activity store; nil without one
	pages    pageSet    // parsed on first use (render.go)
	static   fs.FS
	// policyMu serialises policy saves: validate, compare, write, reload.
	policyMu sync.Mutex

	setupMu    sync.Mutex
	setupToken string // while no account exists
}

// New opens (creating if needed) the console's state. When no account
// exists it makes the setup token and logs it.
func New(o Options) (*Console, error) {
	o.defaults()
	c := &Console{opt: o, dir: Dir(o.StateDir)}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	if err := os.Chmod(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	var err error
	if c.accounts, err = openAccounts(c.dir, o.LockoutAfter, o.LockoutFor, o.Now); err != nil {
		return nil, err
	}
	if c.audit, err = openAuditLog(c.dir); err != nil {
		return nil, err
	}
	if c.revs, err = openRevisions(c.dir); err != nil {
		return nil, err
	}
	if c.tray, err = openTray(c.dir); err != nil {
		return nil, err
	}
	if c.searches, err = openSavedSearches(c.dir); err != nil {
		return nil, err
	}
	if c.oidc, err = newOIDCLogin(o.OIDC); err != nil {
		return nil, err
	}
	c.sessions = newSessions(o.IdleTimeout, o.SessionLifetime, o.Now)
	c.pending = &pendingLogins{m: map[string]pendingLogin{}, now: o.Now}
	c.limiter = newLoginLimiter(o.LoginsPerMinute, o.Now)
	if c.static, err = fs.Sub(assets, "assets/static"); err != nil {
		return nil, err
	}
	if o.ActivityPath != "" {
		if c.ro, err = openReadOnly(o.ActivityPath); err != nil {
			return nil, err
		}
	}
	if c.setupToken, err = ensureSetupToken(c.dir, !c.accounts.empty()); err != nil {
		return nil, err
	}
	if c.setupToken != "" {
		o.Log.Warn("console has no account yet: open it and create the first admin with this one-time setup token "+
			"(also printed by `portcullis console setup-token`)", "setup_token", c.setupToken)
	}
	c.resumeSavepoint()
	c.prepareDashboard()
	return c, nil
}

// Close releases the console's files and connections.
func (c *Console) Close() error {
	c.stopSavepointTimer()
	var errs []error
	if c.ro != nil {
		errs = append(errs, c.ro.Close())
	}
	errs = append(errs, c.audit.close())
	return errors.Join(errs...)
}

// Handler is the console: pages, static assets and /api/v1/.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	static := http.FileServerFS(c.static)
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(static)))
	mux.HandleFunc("GET /api/v1/openapi.yaml", serveOpenAPI)

	// Without a session.
	mux.HandleFunc("GET /{$}", c.root)
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.loginSubmit)
	mux.HandleFunc("POST /login/code", c.loginCode)
	mux.HandleFunc("POST /login/oidc", c.oidcStart)
	mux.HandleFunc("GET "+oidcCallbackPath, c.oidcCallback)
	mux.HandleFunc("GET /setup", c.setupPage)
	mux.HandleFunc("POST /setup", c.setupSubmit)
	mux.HandleFunc("POST /api/v1/login", c.apiLogin)

	// Pages.
	page := func(pattern string, h sessionHandler) { mux.Handle(pattern, c.authPage(h)) }
	page("GET /dashboard", c.dashboardPage)
	page("GET /dashboard/live", c.dashboardLive)
	page("GET /dashboard/health", c.dashboardHealth)
	page("GET /activity", c.activityPage)
	page("GET /activity/event", c.eventDrawer)
	page("GET /activity/export", c.exportEvents)
	page("POST /activity/searches", c.activitySave)
	page("POST /activity/searches/delete", c.activityForget)
	page("GET /policies", c.policyListPage)
	page("GET /policies/edit", c.policyEditPage)
	page("GET /policies/from-event", c.admin(c.policyFromEventPage))
	page("GET /policies/revisions", c.revisionsPage)
	page("GET /changes", c.trayPage)
	page("POST /changes", c.admin(c.trayStageForm))
	page("POST /changes/discard", c.admin(c.trayDiscardForm))
	page("POST /changes/apply", c.admin(c.trayApplyForm))
	page("POST /changes/confirm", c.admin(c.trayConfirmForm))
	page("POST /changes/revert", c.admin(c.trayRevertForm))
	page("GET /apps", c.appsPage)
	page("GET /devices", c.devicesPage)
	page("GET /devices/appliance-ca.crt", c.applianceCA)
	page("POST /devices/ca", c.admin(c.devicesUploadForm(ChangeDeviceCA)))
	page("POST /devices/crl", c.admin(c.devicesUploadForm(ChangeDeviceCRL)))
	page("POST /devices/remove", c.admin(c.devicesRemoveForm))
	page("POST /devices/passthrough/remove", c.admin(c.passThroughRemoveForm))
	page("GET /settings", c.settingsPage)
	page("POST /settings", c.admin(c.settingsStageForm))
	page("POST /settings/test-exporter", c.admin(c.settingsTestForm))
	page("POST /settings/restart", c.admin(c.settingsRestartForm))
	page("POST /settings/snmp-users", c.admin(c.snmpUserAddForm))
	page("POST /settings/snmp-users/remove", c.admin(c.snmpUserRemoveForm))
	page("GET /audit", c.auditPage)
	page("GET /account", c.accountPage)
	page("POST /account/totp", c.accountTOTPBegin)
	page("POST /account/totp/confirm", c.accountTOTPConfirm)
	page("POST /account/totp/disable", c.accountTOTPDisable)
	page("POST /account/password", c.accountPassword)
	page("GET /users", c.usersPage)
	page("POST /users", c.admin(c.usersCreate))
	page("POST /users/unlock", c.admin(c.usersUnlock))
	page("POST /users/remove", c.admin(c.usersRemove))
	page("POST /logout", c.logout)

	// API.
	api := func(pattern string, h sessionHandler) { mux.Handle(pattern, c.authAPI(h)) }
	api("GET /api/v1/session", c.apiSession)
	api("POST /api/v1/logout", c.logout)
	api("GET /api/v1/dashboard", c.apiDashboard)
	api("GET /api/v1/health", c.apiHealth)
	api("GET /api/v1/events", c.apiEvents)
	api("GET /api/v1/events/export", c.exportEvents)
	api("GET /api/v1/events/tail", c.apiTail)
	api("GET /api/v1/searches", c.apiSearches)
	api("POST /api/v1/searches", c.apiSearchSave)
	api("DELETE /api/v1/searches/{id}", c.apiSearchDelete)
	api("GET /api/v1/policies", c.apiPolicyOverview)
	api("GET /api/v1/tray", c.apiTray)
	api("POST /api/v1/tray/changes", c.admin(c.apiTrayStage))
	api("DELETE /api/v1/tray/changes/{id}", c.admin(c.apiTrayDiscard))
	api("POST /api/v1/tray/apply", c.admin(c.apiTrayApply))
	api("POST /api/v1/tray/confirm", c.admin(c.apiTrayConfirm))
	api("POST /api/v1/tray/revert", c.admin(c.apiTrayRevert))
	api("GET /api/v1/apps", c.apiApps)
	api("GET /api/v1/policies/files/{name}", c.apiPolicyFile)
	api("PUT /api/v1/policies/files/{name}", c.admin(c.apiPolicySave))
	api("POST /api/v1/policies/validate", c.apiPolicyValidate)
	api("POST /api/v1/policies/dry-run", c.apiPolicyDryRun)
	api("POST /api/v1/policies/explain", c.apiPolicyExplain)
	api("POST /api/v1/policies/form/render", c.apiPolicyFormRender)
	api("POST /api/v1/policies/form/parse", c.apiPolicyFormParse)
	api("POST /api/v1/policies/form/add", c.admin(c.apiPolicyFormAdd))
	api("GET /api/v1/policies/revisions", c.apiRevisions)
	api("GET /api/v1/devices", c.apiDevices)
	api("GET /api/v1/devices/appliance-ca.crt", c.applianceCA)
	api("POST /api/v1/devices/cas", c.admin(c.apiDeviceUpload(ChangeDeviceCA)))
	api("POST /api/v1/devices/crls", c.admin(c.apiDeviceUpload(ChangeDeviceCRL)))
	api("DELETE /api/v1/devices/files", c.admin(c.apiDeviceRemove))
	api("GET /api/v1/passthrough", c.apiPassThrough)
	api("DELETE /api/v1/passthrough", c.admin(c.apiPassThroughRemove))
	api("GET /api/v1/settings", c.apiSettings)
	api("POST /api/v1/settings", c.admin(c.apiSettingStage))
	api("POST /api/v1/settings/exporters/{name}/test", c.admin(c.apiExporterTest))
	api("POST /api/v1/restart", c.admin(c.apiRestart))
	api("GET /api/v1/snmp/users", c.apiSNMPUsers)
	api("POST /api/v1/snmp/users", c.admin(c.apiSNMPUserAdd))
	api("DELETE /api/v1/snmp/users/{name}", c.admin(c.apiSNMPUserRemove))
	api("GET /api/v1/audit", c.apiAudit)
	api("GET /api/v1/users", c.apiUsers)
	api("POST /api/v1/users", c.admin(c.apiUsersCreate))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if c.sessionOf(r) == nil {
			apiError(w, http.StatusUnauthorized, "log in first")
			return
		}
		apiError(w, http.StatusNotFound, "no such endpoint")
	})
	return securityHeaders(mux)
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Assets change with the binary; an hour keeps pages fast without
		// outliving an upgrade for long.
		w.Header().Set("Cache-Control", "private, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

func (c *Console) root(w http.ResponseWriter, r *http.Request) {
	switch {
	case c.needsSetup():
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
	case c.sessionOf(r) == nil:
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
	}
}

func (c *Console) needsSetup() bool {
	c.setupMu.Lock()
	defer c.setupMu.Unlock()
	return c.setupToken != ""
}

// clientAddr is the peer address: the console is not behind a proxy, so
// forwarded headers (which a client could forge) are never read.
func clientAddr(r *http.Request) string {
	if i := strings.LastIndexByte(r.RemoteAddr, ':'); i > 0 {
		return strings.Trim(r.RemoteAddr[:i], "[]")
	}
	return r.RemoteAddr
}

func (c *Console) record(r *http.Request, s *session, action, target, detail string) {
	e := AuditEntry{Time: c.opt.Now().UTC(), Source: clientAddr(r), Action: action, Target: target, Detail: detail}
	if s != nil {
		e.Actor, e.Role = s.User, s.Role
	}
	if err := c.audit.add(e); err != nil {
		c.opt.Log.Error("console audit log", "err", err)
	}
}
