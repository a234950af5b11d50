package classify

import (
	"os"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/policy"
)

// TestRecordedCaptures replays the real clients' hellos that
// ./clienttest recorded (as root, running each client) against the shipped
// data file, so the classification of every captured client is checked in
// every run, root or not.
func TestRecordedCaptures(t *testing.T) {
	data, err := os.ReadFile("testdata/captures.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Captured string `yaml:"captured"`
		Clients  []struct {
			Name      string   `yaml:"name"`
			Version   string   `yaml:"version"`
			JA4       string   `yaml:"ja4"`
			JA4Raw    string   `yaml:"ja4_raw"`
			ALPN      []string `yaml:"alpn"`
			SNI       string   `yaml:"sni"`
			UserAgent string   `yaml:"user_agent"`
			Client    string   `yaml:"client"`
			Family    string   `yaml:"family"`
		} `yaml:"clients"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	c := Default()
	for _, rec := range file.Clients {
		names[rec.Name] = true
		for _, in := range []Input{{JA4: rec.JA4, ALPN: rec.ALPN}, {JA4: rec.JA4, ALPN: rec.ALPN, UserAgent: rec.UserAgent}} {
			r := c.Classify(in)
			if r.Client.String() != rec.Client || r.Family != rec.Family || r.Match == MatchNone {
				t.Errorf("%s (%s), ua %q: %v %q %v, want %s %s from a data file entry\n why: %s",
					rec.Name, rec.Version, in.UserAgent, r.Client, r.Family, r.Match, rec.Client, rec.Family, r.Why)
			}
			if (r.Client == policy.ClientMobileDesktop) != slices.Contains(r.UATags, policy.UANativeClient) {
				t.Errorf("%s: tags %v", rec.Name, r.UATags)
			}
		}
	}
	// The brief of the classifier: these clients, captured for real.
	for _, n := range []string{"chromium", "firefox-esr", "curl", "curl-chrome-ua", "wget", "python-urllib",
		"python-requests-firefox-ua", "go-chrome-ua", "git", "node", "openssl-s_client"} {
		if !names[n] {
			t.Errorf("testdata/captures.yaml has no capture of %s", n)
		}
	}
}
