package appliance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/appliance/console"
)

// The console's settings page: every setting as it runs, each editable
// through the pending-changes tray. What the appliance takes again on
// reload (SIGHUP or the console's apply) applies at once: the exporters
// (activity.jsonl, syslog, kafka: exportwire.go swaps the ones whose
// section changed), the retention (activity.max_age, max_bytes), the alert
// limit (activity.alert_daily_limit), and devices.check_crl and require_crl
// when the appliance runs with device CAs. Everything else is read at
// start: the page shows the value in the file as pending until a restart,
// which the console asks for when the appliance runs under systemd (it
// drains and exits with status 75, which the unit's RestartForceExitStatus
// turns into a restart). A reload reads the configuration file again; a
// file that does not load is refused whole and the running values stay.

// liveSettings are the values a reload may change.
type liveSettings struct {
	alertDailyLimit atomic.Int64 // 0: the configuration's
	// devices is the devices section in force (nil: the configuration's
	// at start).
	devices atomic.Pointer[DevicesConfig]
	// activity is the activity section in force (nil: the
	// configuration's at start); of it, the exporters and the retention
	// are taken on reload.
	activity atomic.Pointer[ActivityConfig]
}

func (a *Appliance) alertDailyLimit() int {
	if n := a.live.alertDailyLimit.Load(); n > 0 {
		return int(n)
	}
	return a.cfg.Activity.AlertDailyLimit
}

func (a *Appliance) devicesConfig() DevicesConfig {
	if d := a.live.devices.Load(); d != nil {
		return *d
	}
	return a.cfg.Devices
}

func (a *Appliance) activityConfig() ActivityConfig {
	if c := a.live.activity.Load(); c != nil {
		return *c
	}
	return a.cfg.Activity
}

// reloadConfig reads the configuration file again (when the appliance was
// started from one) and takes what applies on reload: the device CAs
// (devices.client_cas, crl_files and the uploaded ones) with check_crl and
// require_crl, the exporters, the retention and
// activity.alert_daily_limit. A file that does not load, exporters that
// cannot be built (a password or roots file missing) or a device set that
// does not load change nothing.
func (a *Appliance) reloadConfig() error {
	devs := a.devicesConfig()
	var next *Config
	if a.cfg.file != "" {
		cfg, err := LoadConfig(a.cfg.file)
		if err != nil {
			return err
		}
		next, devs = cfg, cfg.Devices
	}
	var exps *exporterSet
	if next != nil && a.exporters != nil && a.activity != nil {
		var err error
		if exps, err = a.newExporterSet(next); err != nil {
			return err
		}
	}
	if err := a.reloadDevicesWith(devs); err != nil {
		return err
	}
	if next == nil {
		return nil
	}
	a.live.devices.Store(&next.Devices)
	if n := next.Activity.AlertDailyLimit; n != a.alertDailyLimit() {
		a.live.alertDailyLimit.Store(int64(n))
		a.log.Info("settings reloaded", "activity.alert_daily_limit", n)
	}
	act := next.Activity
	if a.activity != nil {
		old := a.activityConfig()
		if act.MaxAge != old.MaxAge || act.MaxBytes != old.MaxBytes {
			if err := a.activity.store.SetRetention(act.MaxAge, act.MaxBytes); err != nil {
				return err
			}
			a.log.Info("settings reloaded", "activity.max_age", act.MaxAge, "activity.max_bytes", act.MaxBytes)
		}
		if exps != nil {
			if stopped, started := a.exporters.swap(exps); len(stopped)+len(started) > 0 {
				a.log.Info("exporters reloaded", "stopped", stopped, "started", started)
			}
		}
	}
	a.live.activity.Store(&act)
	return nil
}

// checkConfig loads content as the configuration file would be loaded
// (a copy beside it, so relative names read the same), with errors naming
// the real file.
func checkConfig(file string, content []byte) error {
	f, err := os.CreateTemp(filepath.Dir(file), ".portcullis-console-check-*.yaml")
	if err != nil {
		return fmt.Errorf("check configuration: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("check configuration: %w", err)
	}
	if _, err := LoadConfig(tmp); err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), tmp, file))
	}
	return nil
}

func (a *Appliance) consoleSettings() *console.SettingsOptions {
	return &console.SettingsOptions{
		ConfigFile: a.cfg.file,
		Validate:   func(b []byte) error { return checkConfig(a.cfg.file, b) },
		Current:    a.settingGroups,
		Exporters:  a.exporters.names,
		RestartHow: a.restartHow,
		Restart:    a.restartAction(),
	}
}

func yamlText(v any) string {
	switch x := v.(type) {
	case string:
		if x == "" {
			return `""`
		}
		return x
	case time.Duration:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := strings.TrimSpace(string(b))
	if s == "[]" || s == "null" || s == "{}" {
		return "[]"
	}
	return strings.ReplaceAll(s, "\n", "; ")
}

// settingGroups are the settings in force; a setting read only at start
// whose value in the configuration file differs is marked pending.
func (a *Appliance) settingGroups() []console.SettingGroup {
	groups := a.settingGroupsOf(a.cfg, a.activityConfig(), a.devicesConfig(), a.alertDailyLimit())
	if a.cfg.file == "" {
		return groups
	}
	disk, err := LoadConfig(a.cfg.file)
	if err != nil {
		return groups // the tray says why the file does not load
	}
	onDisk := map[string]string{}
	for _, g := range a.settingGroupsOf(disk, disk.Activity, disk.Devices, disk.Activity.AlertDailyLimit) {
		for _, s := range g.Settings {
			onDisk[s.Key] = s.Value
		}
	}
	for gi := range groups {
		for si := range groups[gi].Settings {
			s := &groups[gi].Settings[si]
			if v, ok := onDisk[s.Key]; ok && s.Applies != "reload" && v != s.Value {
				s.Pending = v
			}
		}
	}
	return groups
}

// settingGroupsOf groups the settings of c, with act, dev and alertLimit
// the values in force of what applies on reload.
func (a *Appliance) settingGroupsOf(c *Config, act ActivityConfig, dev DevicesConfig, alertLimit int) []console.SettingGroup {
	set := func(key, label string, v any, hint ...string) console.Setting {
		s := console.Setting{Key: key, Label: label, Value: yamlText(v), Applies: "restart"}
		if len(hint) > 0 {
			s.Hint = hint[0]
		}
		return s
	}
	live := func(s console.Setting) console.Setting { s.Applies = "reload"; return s }
	derived := func(s console.Setting) console.Setting { s.Derived = true; return s }
	// Device settings apply on reload when the proxy runs (not in a
	// check of the configuration alone).
	devLive := func(s console.Setting) console.Setting {
		if a.proxy != nil && a.proxy.ClientCertsSwappable() {
			s.Applies = "reload"
		}
		return s
	}
	var samlApps []string
	for _, s := range c.Suffix.SAML {
		samlApps = append(samlApps, strings.Join(s.Apps, ",")+" ← "+s.IdPCertificate)
	}
	return []console.SettingGroup{
		{Name: "Listeners", Settings: []console.Setting{
			set("transparent.listen_v4", "Transparent proxy (IPv4)", c.Transparent.ListenV4),
			set("transparent.listen_v6", "Transparent proxy (IPv6)", c.Transparent.ListenV6),
			set("explicit.listen", "Explicit proxy", c.Explicit.Listen),
			set("management.listen", "Management (metrics, health)", c.Management.Listen),
			set("console.listen", "Console", c.Console.Listen),
		}},
		{Name: "Suffix proxy", Settings: []console.Setting{
			set("suffix.domain", "Suffix domain", c.Suffix.Domain, "Apps are served as app.example.com.<domain>; empty: the suffix proxy is off."),
			set("suffix.listen", "Listen address", c.Suffix.Listen),
			set("suffix.session_ttl", "Session lifetime", c.Suffix.SessionTTL),
			set("suffix.suffix_discovered", "Proxy discovered domains too", c.Suffix.SuffixDiscovered),
		}},
		{Name: "Identity providers", Settings: []console.Setting{
			set("suffix.oidc.issuer", "OpenID provider (issuer)", c.Suffix.OIDC.Issuer),
			set("suffix.oidc.client_id", "OIDC client ID", c.Suffix.OIDC.ClientID),
			set("suffix.oidc.client_secret_file", "OIDC client secret file", c.Suffix.OIDC.ClientSecretFile, "Only where the secret is read from is shown."),
			set("suffix.oidc.scopes", "OIDC scopes", c.Suffix.OIDC.Scopes),
			derived(set("suffix.saml", "SAML IdPs (apps ← IdP certificate)", samlApps, "A list of structures: edit it in the configuration file.")),
			set("identity.require_user_for", "Sign-in required in transparent mode for", c.Identity.RequireUserFor),
			set("identity.groups_claim", "Groups claim", c.Identity.GroupsClaim),
			set("identity.step_up.acr", "Step-up (OIDC acr)", c.Identity.StepUp.ACR),
			set("identity.step_up.saml.idp_metadata_url", "Step-up SAML IdP metadata", c.Identity.StepUp.SAML.IdPMetadataURL),
			set("identity.step_up.ttl", "Step-up lifetime", c.Identity.StepUp.TTL),
		}},
		{Name: "Default behaviours", Settings: []console.Setting{
			set("session.inspection_timeout", "Inspection timeout", c.Session.InspectionTimeout,
				"Past it, each policy's inspection_timeout behaviour decides; bodies past a policy's max_inspection_size follow its oversize behaviour (policy files)."),
			set("activity.mode", "When events cannot be stored", c.Activity.Mode, "audit-strict refuses sessions; best-effort drops events."),
			set("activity.hold_responses", "Responses held until recorded", c.Activity.Hold),
			set("datapath.fail_open", "Datapath forwards unsteered when no proxy listens", c.Datapath.FailOpen, "true: fail open; false: refuse (fail closed)."),
			set("upstream.revocation", "Origin certificate revocation", c.Upstream.Revocation),
			set("session.malware.clamd.address", "Malware scanner (clamd)", c.Session.Malware.Clamd.Address),
			set("session.malware.icap.url", "Malware scanner (ICAP)", c.Session.Malware.ICAP.URL),
			devLive(set("devices.check_crl", "Check device certificate revocation", dev.CheckCRL)),
			devLive(set("devices.require_crl", "Require a CRL answer for devices", dev.RequireCRL, "Needs check_crl.")),
			set("devices.user_from", "User named by a device certificate", dev.UserFrom),
		}},
		{Name: "Exporters", Settings: []console.Setting{
			live(set("activity.jsonl.path", "JSON lines file", act.JSONL.Path, "Empty: off.")),
			live(set("activity.jsonl.max_bytes", "JSON lines rotation size", act.JSONL.MaxBytes)),
			live(set("activity.jsonl.keep", "JSON lines files kept", act.JSONL.Keep)),
			live(set("activity.syslog.addr", "Syslog collector", act.Syslog.Addr, "host:port; empty: off.")),
			live(set("activity.syslog.network", "Syslog transport", act.Syslog.Network)),
			live(set("activity.syslog.format", "Syslog format", act.Syslog.Format)),
			live(set("activity.kafka.brokers", "Kafka brokers", act.Kafka.Brokers, "Empty: off.")),
			live(set("activity.kafka.topic", "Kafka topic", act.Kafka.Topic)),
			live(set("activity.kafka.tls", "Kafka over TLS", act.Kafka.TLS)),
			live(set("activity.kafka.sasl.mechanism", "Kafka SASL", act.Kafka.SASL.Mechanism)),
			live(set("activity.kafka.sasl.user", "Kafka SASL user", act.Kafka.SASL.User)),
			live(set("activity.kafka.sasl.password_file", "Kafka SASL password file", act.Kafka.SASL.PasswordFile)),
		}},
		{Name: "Logs", Settings: []console.Setting{
			set("log.access", "Access log", c.Log.Access, "stdout, stderr or a file (the packaged service: /var/log/portcullis/access.log). One JSON line per request."),
			set("log.access_max_mib", "Rotate the access log file at (MiB)", c.Log.AccessMaxMiB),
			set("log.access_files", "Rotated access log files kept", c.Log.AccessFiles),
			set("log.level", "Operational log level", c.Log.Level, "debug, info, warn or error."),
		}},
		{Name: "SNMP", Settings: []console.Setting{
			set("snmp.agentx_socket", "snmpd's AgentX socket", c.SNMP.AgentXSocket, "Empty: SNMP off."),
			set("snmp.notify_interval", "Notification rate limit", c.SNMP.NotifyInterval),
		}},
		{Name: "Alerts", Settings: []console.Setting{
			live(set("activity.alert_daily_limit", "Alerts per policy and UTC day", alertLimit)),
		}},
		{Name: "Retention", Settings: []console.Setting{
			live(set("activity.max_age", "Delete events older than", act.MaxAge, "0: keep.")),
			live(set("activity.max_bytes", "Delete the oldest while the store is larger than (bytes)", act.MaxBytes, "0: no limit.")),
		}},
	}
}

// exitRestart is the exit status of a restart the console asked for
// (EX_TEMPFAIL): the systemd unit lists it in RestartForceExitStatus, so
// systemd starts the appliance again whatever its Restart= says.
const exitRestart = 75

// errRestartRequested ends Run after a drain, for exit status 75.
var errRestartRequested = errors.New("restart requested from the console")

// underSystemd: the appliance runs as a Type=notify unit.
func underSystemd() bool { return notifyGetenv("NOTIFY_SOCKET") != "" }

func (a *Appliance) restartHow() string {
	if underSystemd() {
		return "The appliance runs under systemd: “Restart the appliance” drains it and exits with status 75, which the unit (RestartForceExitStatus=75) restarts; `systemctl restart portcullis` does the same from a shell."
	}
	return "The appliance does not run under systemd: the console cannot start it again. Stop it (SIGTERM) and start it with the same command line; SIGHUP reloads only what applies on reload."
}

// restartAction is the console's restart: under systemd only (nil
// otherwise). It makes Run drain and return errRestartRequested.
func (a *Appliance) restartAction() func() error {
	if !underSystemd() {
		return nil
	}
	return func() error {
		select {
		case a.restartReq <- struct{}{}:
			a.log.Warn("restart requested from the console: draining, then exit status 75 for systemd to restart")
			return nil
		default:
			return errors.New("a restart is already under way")
		}
	}
}
