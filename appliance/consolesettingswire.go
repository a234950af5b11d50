package appliance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/appliance/console"
)

// The console's settings page: every setting as it runs, and the ones the
// appliance takes again on reload (SIGHUP or the console's apply)
// editable: activity.alert_daily_limit, and devices.check_crl and
// require_crl when the appliance runs with device CAs; everything else is
// read at start and the page says so. A reload reads the configuration
// file again; a file that does not load is refused whole and the running
// values stay.

// liveSettings are the values a reload may change.
type liveSettings struct {
	alertDailyLimit atomic.Int64 // 0: the configuration's
	// devices is the devices section in force (nil: the configuration's
	// at start).
	devices atomic.Pointer[DevicesConfig]
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

// reloadConfig reads the configuration file again (when the appliance was
// started from one) and takes what applies on reload: the device CAs
// (devices.client_cas, crl_files and the uploaded ones) with check_crl and
// require_crl, and activity.alert_daily_limit. A file that does not load,
// or a device set that does not, changes nothing.
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
		Exporters: func() []string {
			var out []string
			for name := range a.exporters {
				out = append(out, name)
			}
			slices.Sort(out)
			return out
		},
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

func (a *Appliance) settingGroups() []console.SettingGroup {
	c := a.cfg
	set := func(key, label string, v any, hint ...string) console.Setting {
		s := console.Setting{Key: key, Label: label, Value: yamlText(v), Applies: "restart"}
		if len(hint) > 0 {
			s.Hint = hint[0]
		}
		return s
	}
	live := func(s console.Setting) console.Setting { s.Applies = "reload"; return s }
	// Device settings apply on reload once the listeners ask for
	// certificates (the appliance started with device CAs).
	dev := a.devicesConfig()
	devLive := func(s console.Setting) console.Setting {
		if a.proxy != nil && a.proxy.ClientCertificates() {
			s.Applies = "reload"
		} else {
			s.Hint = "Applies at restart: this appliance started without device CAs."
		}
		return s
	}
	oidcSecret := "not set"
	if c.Suffix.OIDC.ClientSecretFile != "" {
		oidcSecret = "from " + c.Suffix.OIDC.ClientSecretFile
	}
	var samlApps []string
	for _, s := range c.Suffix.SAML {
		samlApps = append(samlApps, strings.Join(s.Apps, ",")+" ← "+s.IdPCertificate)
	}
	snmp := "off (snmp.agentx_socket empty)"
	if c.SNMP.AgentXSocket != "" {
		snmp = "AgentX subagent of snmpd at " + c.SNMP.AgentXSocket
	}
	return []console.SettingGroup{
		{Name: "Suffix proxy", Settings: []console.Setting{
			set("suffix.domain", "Suffix domain", c.Suffix.Domain, "Apps are served as app.example.com.<domain>; empty: the suffix proxy is off."),
			set("suffix.listen", "Listen address", c.Suffix.Listen),
			set("suffix.session_ttl", "Session lifetime", c.Suffix.SessionTTL),
			set("suffix.suffix_discovered", "Proxy discovered domains too", c.Suffix.SuffixDiscovered),
		}},
		{Name: "Identity providers", Settings: []console.Setting{
			set("suffix.oidc.issuer", "OpenID provider (issuer)", c.Suffix.OIDC.Issuer),
			set("suffix.oidc.client_id", "OIDC client ID", c.Suffix.OIDC.ClientID),
			set("suffix.oidc.client_secret_file", "OIDC client secret", oidcSecret, "Only where it is read from is shown."),
			set("suffix.oidc.scopes", "OIDC scopes", c.Suffix.OIDC.Scopes),
			set("suffix.saml", "SAML IdPs (apps ← IdP certificate)", samlApps),
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
			set("datapath.fail_open", "Datapath when no proxy listens", map[bool]string{true: "forward unsteered (fail open)", false: "refuse (fail closed)"}[c.Datapath.FailOpen]),
			set("upstream.revocation", "Origin certificate revocation", c.Upstream.Revocation),
			set("session.malware.clamd.address", "Malware scanner (clamd)", c.Session.Malware.Clamd.Address),
			set("session.malware.icap.url", "Malware scanner (ICAP)", c.Session.Malware.ICAP.URL),
			devLive(set("devices.check_crl", "Check device certificate revocation", dev.CheckCRL)),
			devLive(set("devices.require_crl", "Require a CRL answer for devices", dev.RequireCRL, "Needs check_crl.")),
			set("devices.user_from", "User named by a device certificate", dev.UserFrom),
		}},
		{Name: "Exporters", Settings: []console.Setting{
			set("activity.jsonl.path", "JSON lines file", c.Activity.JSONL.Path),
			set("activity.jsonl.max_bytes", "JSON lines rotation size", c.Activity.JSONL.MaxBytes),
			set("activity.syslog.addr", "Syslog collector", c.Activity.Syslog.Addr),
			set("activity.syslog.network", "Syslog transport", c.Activity.Syslog.Network),
			set("activity.syslog.format", "Syslog format", c.Activity.Syslog.Format),
			set("activity.kafka.brokers", "Kafka brokers", c.Activity.Kafka.Brokers),
			set("activity.kafka.topic", "Kafka topic", c.Activity.Kafka.Topic),
			set("activity.kafka.sasl.mechanism", "Kafka SASL", c.Activity.Kafka.SASL.Mechanism),
		}},
		{Name: "SNMP", Settings: []console.Setting{
			set("snmp.agentx_socket", "SNMP", snmp,
				"SNMPv3 users (USM names, auth and privacy keys) belong to snmpd, the AgentX master: the appliance has none of its own to show or edit."),
			set("snmp.notify_interval", "Notification rate limit", c.SNMP.NotifyInterval),
		}},
		{Name: "Alerts", Settings: []console.Setting{
			live(set("activity.alert_daily_limit", "Alerts per policy and UTC day", a.alertDailyLimit())),
		}},
		{Name: "Retention", Settings: []console.Setting{
			set("activity.max_age", "Delete events older than", c.Activity.MaxAge, "0: keep."),
			set("activity.max_bytes", "Delete the oldest while the store is larger than (bytes)", c.Activity.MaxBytes, "0: no limit."),
		}},
	}
}
