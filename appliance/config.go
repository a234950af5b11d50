package appliance

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultConfig returns the embedded default configuration file.
func DefaultConfig() []byte { return bytes.Clone(defaultYAML) }

// Config is the whole appliance configuration, decoded strictly from YAML.
type Config struct {
	StateDir    string              `mapstructure:"state_dir"`
	Management  ManagementConfig    `mapstructure:"management"`
	Log         LogConfig           `mapstructure:"log"`
	Transparent TransparentConfig   `mapstructure:"transparent"`
	Explicit    ExplicitConfig      `mapstructure:"explicit"`
	Datapath    DatapathConfig      `mapstructure:"datapath"`
	Upstream    UpstreamConfig      `mapstructure:"upstream"`
	Access      AccessConfig        `mapstructure:"access"`
	Policy      PolicyConfig        `mapstructure:"policy"`
	Activity    ActivityConfig      `mapstructure:"activity"`
	Suffix      SuffixConfig        `mapstructure:"suffix"`
	Clients     ClientsConfig       `mapstructure:"clients"`  // type in clientwire.go
	Session     SessionConfig       `mapstructure:"session"`  // type in sessionwire.go
	Devices     DevicesConfig       `mapstructure:"devices"`  // type in devicewire.go
	Identity    IdentityConfig      `mapstructure:"identity"` // type in identitywire.go
	Timeouts    TimeoutsConfig      `mapstructure:"timeouts"`
	Limits      LimitsConfig        `mapstructure:"limits"` // type in limitswire.go
	Hosts       map[string][]string `mapstructure:"hosts"`
	SNMP        SNMPConfig          `mapstructure:"snmp"` // type in snmpwire.go
	// Console's type is in consolewire.go.
	Console ConsoleConfig `mapstructure:"console"`

	// file is the path LoadConfig read ("" for the defaults alone): the
	// console's settings page edits it (consolesettingswire.go).
	file string
}

type ManagementConfig struct {
	Listen string `mapstructure:"listen"`
	PProf  bool   `mapstructure:"pprof"`
}

type LogConfig struct {
	Access string `mapstructure:"access"`
	// AccessMaxMiB and AccessFiles rotate an access log file: at this
	// size it is renamed <file>.1, and this many rotated files are kept.
	AccessMaxMiB int    `mapstructure:"access_max_mib"`
	AccessFiles  int    `mapstructure:"access_files"`
	Level        string `mapstructure:"level"`
}

type TransparentConfig struct {
	Enabled  bool     `mapstructure:"enabled"`
	ListenV4 string   `mapstructure:"listen_v4"`
	ListenV6 string   `mapstructure:"listen_v6"`
	TLSPorts []uint16 `mapstructure:"tls_ports"`
}

type ExplicitConfig struct {
	Enabled bool   `mapstructure:"enabled"`
	Listen  string `mapstructure:"listen"`
}

type DatapathConfig struct {
	Enabled        bool           `mapstructure:"enabled"`
	Interface      string         `mapstructure:"interface"`
	ClientPrefixes []netip.Prefix `mapstructure:"client_prefixes"`
	InterceptPorts []uint16       `mapstructure:"intercept_ports"`
	BypassPrefixes []netip.Prefix `mapstructure:"bypass_prefixes"`
	DropQUIC       bool           `mapstructure:"drop_quic"`
	FailOpen       bool           `mapstructure:"fail_open"`
	OnStop         string         `mapstructure:"on_stop"`
	PinDir         string         `mapstructure:"pin_dir"`
	// Attach is the hook: auto (TCX where the kernel has it, else tc), tcx
	// or tc.
	Attach string `mapstructure:"attach"`
	// Steering is the mechanism (agent.Steering): auto, route or tc.
	Steering string `mapstructure:"steering"`
}

type UpstreamConfig struct {
	ExtraRoots  []string      `mapstructure:"extra_roots"`
	SystemRoots bool          `mapstructure:"system_roots"`
	Revocation  string        `mapstructure:"revocation"`
	MinRSABits  int           `mapstructure:"min_rsa_bits"`
	MinECBits   int           `mapstructure:"min_ec_bits"`
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
}

type AccessConfig struct {
	BypassHosts []string `mapstructure:"bypass_hosts"`
	BlockHosts  []string `mapstructure:"block_hosts"`
}

type PolicyConfig struct {
	// Dir holds the policy YAML files; empty means no policies (every
	// connection intercepted, every request allowed and logged).
	Dir string `mapstructure:"dir"`
}

type ActivityConfig struct {
	Path string   `mapstructure:"path"`
	Mode string   `mapstructure:"mode"`
	Hold HoldRule `mapstructure:"hold_responses"` // type in activitywire.go
	// AlertDailyLimit bounds the alerts one policy raises per UTC day.
	AlertDailyLimit int             `mapstructure:"alert_daily_limit"`
	MaxAge          time.Duration   `mapstructure:"max_age"`
	MaxBytes        int64           `mapstructure:"max_bytes"`
	JSONL           JSONLinesConfig `mapstructure:"jsonl"`
	Syslog          SyslogConfig    `mapstructure:"syslog"`
	Kafka           KafkaConfig     `mapstructure:"kafka"`
}

// KafkaConfig exports activity events to a Kafka topic.
type KafkaConfig struct {
	Brokers []string        `mapstructure:"brokers"`
	Topic   string          `mapstructure:"topic"`
	KeyBy   string          `mapstructure:"key_by"`
	TLS     bool            `mapstructure:"tls"`
	Roots   []string        `mapstructure:"roots"`
	SASL    KafkaSASLConfig `mapstructure:"sasl"`
}

type KafkaSASLConfig struct {
	Mechanism    string `mapstructure:"mechanism"`
	User         string `mapstructure:"user"`
	PasswordFile string `mapstructure:"password_file"`
}

type SyslogConfig struct {
	Addr    string   `mapstructure:"addr"`
	Network string   `mapstructure:"network"`
	Format  string   `mapstructure:"format"`
	Roots   []string `mapstructure:"roots"`
}

type JSONLinesConfig struct {
	Path     string `mapstructure:"path"`
	MaxBytes int64  `mapstructure:"max_bytes"`
	Keep     int    `mapstructure:"keep"`
}

// SuffixConfig is the suffix reverse proxy: app.example.com is served as
// app.example.com.<domain>.
type SuffixConfig struct {
	Domain           string            `mapstructure:"domain"`
	Listen           string            `mapstructure:"listen"`
	Certificate      string            `mapstructure:"certificate"`
	Key              string            `mapstructure:"key"`
	SuffixDiscovered bool              `mapstructure:"suffix_discovered"`
	AllowPrivate     []string          `mapstructure:"allow_private"`
	SessionSecrets   []string          `mapstructure:"session_secrets"`
	SessionTTL       time.Duration     `mapstructure:"session_ttl"`
	SAML             []SuffixSAMLTrust `mapstructure:"saml"`
	OIDC             SuffixOIDCConfig  `mapstructure:"oidc"`
}

// SuffixSAMLTrust names the IdP certificate whose assertions, posted to the
// given apps, tell the proxy who the user is.
type SuffixSAMLTrust struct {
	Apps           []string `mapstructure:"apps"`
	IdPCertificate string   `mapstructure:"idp_certificate"`
}

// SuffixOIDCConfig is the proxy's own login, for apps without SSO.
type SuffixOIDCConfig struct {
	Issuer           string   `mapstructure:"issuer"`
	ClientID         string   `mapstructure:"client_id"`
	ClientSecretFile string   `mapstructure:"client_secret_file"`
	Scopes           []string `mapstructure:"scopes"`
	RequireFor       []string `mapstructure:"require_for"`
}

type TimeoutsConfig struct {
	Handshake time.Duration `mapstructure:"handshake"`
	Idle      time.Duration `mapstructure:"idle"`
	// ShutdownGrace bounds the drain on SIGTERM (appliance.go Run).
	ShutdownGrace time.Duration `mapstructure:"shutdown_grace"`
}

// LoadConfig reads the embedded default, then overlays the file at path (if
// path is not empty). Unknown keys and values of the wrong type are errors
// naming the file, line and column.
func LoadConfig(path string) (*Config, error) {
	// Host names are map keys under "hosts:", so the key path delimiter must be
	// something a host name cannot contain.
	v := viper.NewWithOptions(viper.KeyDelimiter("::"))
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(defaultYAML)); err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	var src []byte
	if path != "" {
		var err error
		if src, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := checkKeys(path, src); err != nil {
			return nil, err
		}
		if err := v.MergeConfig(bytes.NewReader(src)); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	var cfg Config
	err := v.UnmarshalExact(&cfg, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.TextUnmarshallerHookFunc(),
	)))
	if err != nil {
		return nil, locateDecodeError(path, src, err)
	}
	if err := cfg.Validate(); err != nil {
		if path == "" {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.file = path
	return &cfg, nil
}

// Validate checks values that decode fine but make no sense together.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, fmt.Errorf(key+": "+format, a...)) }
	if c.StateDir == "" {
		bad("state_dir", "must be set")
	}
	if c.Transparent.Enabled && c.Datapath.Enabled && c.Datapath.Interface == "" {
		bad("datapath.interface", "must name the LAN interface")
	}
	switch c.Datapath.OnStop {
	case "keep", "detach":
	default:
		bad("datapath.on_stop", "%q is not one of keep, detach", c.Datapath.OnStop)
	}
	switch c.Datapath.Attach {
	case "auto", "tcx", "tc":
	default:
		bad("datapath.attach", "%q is not one of auto, tcx, tc", c.Datapath.Attach)
	}
	switch c.Datapath.Steering {
	case "auto", "tc":
	case "route":
		if c.Datapath.FailOpen {
			bad("datapath.steering", "route steering cannot fail open (only a program on every packet can forward what no socket owns): use auto or tc, or fail_open: false")
		}
		if c.Datapath.Attach != "auto" {
			bad("datapath.steering", "route steering has no attach hook: leave datapath.attach at auto")
		}
	default:
		bad("datapath.steering", "%q is not one of auto, route, tc", c.Datapath.Steering)
	}
	for _, p := range c.Datapath.InterceptPorts {
		if p == 0 {
			bad("datapath.intercept_ports", "port 0 is not a port")
		}
	}
	switch c.Activity.Mode {
	case "audit-strict", "best-effort":
	default:
		bad("activity.mode", "%q is not one of audit-strict, best-effort", c.Activity.Mode)
	}
	if c.Activity.Syslog.Network != "tcp" && c.Activity.Syslog.Network != "tls" {
		bad("activity.syslog.network", "%q is not one of tls, tcp", c.Activity.Syslog.Network)
	}
	if c.Activity.Syslog.Format != "rfc5424" && c.Activity.Syslog.Format != "cef" {
		bad("activity.syslog.format", "%q is not one of rfc5424, cef", c.Activity.Syslog.Format)
	}
	c.Activity.Hold.validate(bad)
	c.Session.validate(bad)
	c.Devices.validate(bad)
	c.Clients.validate(bad)
	switch c.Upstream.Revocation {
	case "soft", "hard", "off":
	default:
		bad("upstream.revocation", "%q is not one of soft, hard, off", c.Upstream.Revocation)
	}
	if c.Upstream.MinRSABits < 2048 || c.Upstream.MinECBits < 256 {
		bad("upstream", "min_rsa_bits below 2048 and min_ec_bits below 256 are not accepted")
	}
	if c.Activity.AlertDailyLimit < 1 {
		bad("activity.alert_daily_limit", "must be at least 1")
	}
	if c.Activity.MaxAge < 0 || c.Activity.MaxBytes < 0 {
		bad("activity", "max_age and max_bytes cannot be negative")
	}
	if c.Log.AccessMaxMiB < 1 || c.Log.AccessMaxMiB > 1<<16 {
		bad("log.access_max_mib", "%d is not between 1 and 65536", c.Log.AccessMaxMiB)
	}
	if c.Log.AccessFiles < 1 || c.Log.AccessFiles > 1000 {
		bad("log.access_files", "%d is not between 1 and 1000", c.Log.AccessFiles)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Suffix.Domain != "" {
		if !strings.Contains(strings.Trim(c.Suffix.Domain, "."), ".") {
			bad("suffix.domain", "%q must be a domain of at least two labels", c.Suffix.Domain)
		}
		if c.Suffix.Listen == "" {
			bad("suffix.listen", "must be set when suffix.domain is")
		}
		if (c.Suffix.Certificate == "") != (c.Suffix.Key == "") {
			bad("suffix.certificate", "certificate and key go together")
		}
		if c.Suffix.SessionTTL <= 0 {
			bad("suffix.session_ttl", "must be positive")
		}
		for i, t := range c.Suffix.SAML {
			if len(t.Apps) == 0 || t.IdPCertificate == "" {
				bad(fmt.Sprintf("suffix.saml[%d]", i), "needs apps and idp_certificate")
			}
		}
		if o := c.Suffix.OIDC; o.Issuer != "" && (o.ClientID == "" || !strings.HasPrefix(o.Issuer, "https://")) {
			bad("suffix.oidc", "needs an https issuer and a client_id")
		}
	}
	if c.Timeouts.Handshake <= 0 || c.Timeouts.Idle <= 0 || c.Upstream.DialTimeout <= 0 {
		bad("timeouts", "handshake, idle and upstream.dial_timeout must be positive")
	}
	if c.Timeouts.ShutdownGrace <= 0 {
		bad("timeouts.shutdown_grace", "must be positive (the drain on SIGTERM needs a bound)")
	}
	if err := c.Limits.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Identity.validate(c); err != nil {
		errs = append(errs, err)
	}
	c.Session.stepUp = c.stepUpAvailable()
	if err := c.SNMP.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Console.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkKeys walks the YAML the admin wrote against the Config struct and
// reports every key it does not know, with its line and column. (mapstructure
// names only the leaf of a nested unknown key, which is not enough to find it.)
func checkKeys(path string, src []byte) error {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(root.Content) == 0 {
		return nil
	}
	var errs []error
	walkKeys(root.Content[0], reflect.TypeOf(Config{}), "", func(key string, n *yaml.Node) {
		errs = append(errs, fmt.Errorf("%s:%d:%d: unknown key %q (`portcullis config default` lists every key)", path, n.Line, n.Column, key))
	})
	return errors.Join(errs...)
}

func walkKeys(n *yaml.Node, t reflect.Type, prefix string, unknown func(string, *yaml.Node)) {
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("mapstructure"); tag != "" {
			fields[tag] = t.Field(i).Type
		}
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		key := prefix + k.Value
		ft, ok := fields[strings.ToLower(k.Value)]
		if !ok {
			unknown(key, k)
			continue
		}
		walkKeys(v, ft, key+".", unknown)
	}
}

var decodeLineRE = regexp.MustCompile(`'([^']+)' (.*)`)

// locateDecodeError rewrites mapstructure's "'a.b[0]' message" lines as
// "file:line:col: a.b[0]: message", pointing at the offending value.
func locateDecodeError(path string, src []byte, err error) error {
	var root yaml.Node
	if path == "" || yaml.Unmarshal(src, &root) != nil {
		return fmt.Errorf("config: %w", err)
	}
	var errs []error
	for _, m := range decodeLineRE.FindAllStringSubmatch(err.Error(), -1) {
		line, col := findKey(&root, splitKeyPath(m[1]))
		errs = append(errs, fmt.Errorf("%s:%d:%d: %s: %s", path, line, col, m[1], m[2]))
	}
	if len(errs) == 0 {
		return fmt.Errorf("%s: %w", path, err)
	}
	return errors.Join(errs...)
}

// splitKeyPath turns "a.b[2]" into ["a", "b", "[2]"].
func splitKeyPath(key string) []string {
	var out []string
	for _, part := range strings.Split(key, ".") {
		if i := strings.IndexByte(part, '['); i > 0 {
			out = append(out, part[:i], part[i:])
			continue
		}
		out = append(out, part)
	}
	return out
}

// findKey returns the position of a dotted key in a YAML document, or 0,0.
func findKey(n *yaml.Node, path []string) (int, int) {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for i, name := range path {
		if n.Kind == yaml.SequenceNode && strings.HasPrefix(name, "[") {
			idx, err := strconv.Atoi(strings.Trim(name, "[]"))
			if err != nil || idx >= len(n.Content) {
				return 0, 0
			}
			n = n.Content[idx]
			if i == len(path)-1 {
				return n.Line, n.Column
			}
			continue
		}
		if n.Kind != yaml.MappingNode {
			return 0, 0
		}
		found := false
		for j := 0; j+1 < len(n.Content); j += 2 {
			if strings.EqualFold(n.Content[j].Value, name) {
				if i == len(path)-1 {
					return n.Content[j].Line, n.Content[j].Column
				}
				n, found = n.Content[j+1], true
				break
			}
		}
		if !found {
			return 0, 0
		}
	}
	return 0, 0
}
