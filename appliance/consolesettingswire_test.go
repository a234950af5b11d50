package appliance

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The console's settings hooks against the real loader: a candidate file
// is checked as LoadConfig loads it (errors name the real file, line and
// column), a reload takes activity.alert_daily_limit from the file and
// keeps the running value when the file does not load, and the page lists
// it as the one setting applied on reload.
func TestConsoleSettingsReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "portcullis.yaml")
	base := "state_dir: " + dir + "\nactivity:\n  alert_daily_limit: 100\n"
	if err := os.WriteFile(file, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	a := &Appliance{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	opts := a.consoleSettings()
	if opts.ConfigFile != file {
		t.Fatalf("config file %q", opts.ConfigFile)
	}
	if err := opts.Validate([]byte(base + "  bogus_key: 1\n")); err == nil || !strings.Contains(err.Error(), file+":4") || strings.Contains(err.Error(), ".portcullis-console-check") {
		t.Errorf("unknown key: %v, want an error at %s:4 naming the real file", err, file)
	}
	if err := opts.Validate([]byte(strings.Replace(base, "100", "0", 1))); err == nil || !strings.Contains(err.Error(), "activity.alert_daily_limit") {
		t.Errorf("limit 0: %v", err)
	}
	if err := opts.Validate([]byte(strings.Replace(base, "100", "250", 1))); err != nil {
		t.Errorf("limit 250: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("check files left behind: %v", ents)
	}

	if err := os.WriteFile(file, []byte(strings.Replace(base, "100", "250", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.reloadConfig(); err != nil || a.alertDailyLimit() != 250 {
		t.Fatalf("reload: %v, limit %d", err, a.alertDailyLimit())
	}
	if err := os.WriteFile(file, []byte(base+"  max_age: forever\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.reloadConfig(); err == nil || a.alertDailyLimit() != 250 {
		t.Errorf("reload of a bad file: %v, limit %d (want an error and 250 kept)", err, a.alertDailyLimit())
	}
	applies := map[string]string{}
	for _, g := range opts.Current() {
		for _, s := range g.Settings {
			applies[s.Key] = s.Applies + " " + s.Value
		}
	}
	for key, want := range map[string]string{
		"activity.alert_daily_limit": "reload 250", "activity.max_age": "reload 2160h0m0s", "activity.syslog.addr": `reload ""`,
		"activity.jsonl.path": `reload ""`, "activity.kafka.brokers": "reload []",
		"session.inspection_timeout": "restart 30s", "suffix.domain": `restart ""`, "console.listen": "restart 127.0.0.1:9443",
		// Without device CAs at start, the device settings apply at restart.
		"devices.check_crl": "restart true",
	} {
		if applies[key] != want {
			t.Errorf("%s: %q, want %q", key, applies[key], want)
		}
	}
}
