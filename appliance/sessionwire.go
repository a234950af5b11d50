package appliance

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
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
