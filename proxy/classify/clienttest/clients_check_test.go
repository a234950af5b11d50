package clienttest

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/classify"
)

var update = flag.Bool("update", false, "rewrite ../testdata/captures.yaml with the captured hellos")

// capturesFile is replayed by proxy/classify's TestRecordedCaptures.
const capturesFile = "../testdata/captures.yaml"

// want is what each client must be classified as.
var want = map[string]struct {
	client policy.ClientApp
	family string
}{
	"chromium":                   {policy.ClientBrowser, "chromium"},
	"chromium-ip-literal":        {policy.ClientBrowser, "chromium"},
	"firefox-esr":                {policy.ClientBrowser, "firefox"},
	"curl":                       {policy.ClientMobileDesktop, "curl"},
	"curl-chrome-ua":             {policy.ClientMobileDesktop, "curl"},
	"wget":                       {policy.ClientMobileDesktop, "wget"},
	"python-urllib":              {policy.ClientMobileDesktop, "python"},
	"python-requests-firefox-ua": {policy.ClientMobileDesktop, "python"},
	"go-chrome-ua":               {policy.ClientMobileDesktop, "go"},
	"git":                        {policy.ClientMobileDesktop, "git"},
	"node":                       {policy.ClientMobileDesktop, "node"},
	"openssl-s_client":           {policy.ClientMobileDesktop, "openssl"},
}

// recorded is one entry of captures.yaml.
type recorded struct {
	Name      string   `yaml:"name"`
	Version   string   `yaml:"version"`
	JA4       string   `yaml:"ja4"`
	JA4Raw    string   `yaml:"ja4_raw"`
	ALPN      []string `yaml:"alpn,flow"`
	SNI       string   `yaml:"sni"`
	UserAgent string   `yaml:"user_agent"`
	Client    string   `yaml:"client"`
	Family    string   `yaml:"family"`
}

// TestClients runs every client, one at a time (two cores, and two browsers
// at once would only slow each other), and checks the classification of
// every connection it made, at connection level (no User-Agent yet) and
// with the User-Agent of its first request.
func TestClients(t *testing.T) {
	requireRoot(t)
	c := classify.Default()
	var all []recorded
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			w, ok := want[cl.name]
			if !ok {
				t.Fatalf("no expectation for %s", cl.name)
			}
			s := startServer(t)
			started := time.Now()
			cl.run(t, s)
			caps := s.waitFor(5*time.Second, func(cs []capture) bool { return len(cs) > 0 && (!cl.sendsUA || anyRequested(cs)) })
			if len(caps) == 0 {
				t.Fatalf("%s sent no ClientHello within %v", cl.name, time.Since(started).Round(time.Millisecond))
			}
			if cl.sendsUA && !anyRequested(caps) {
				t.Errorf("%s completed no request: the User-Agent check did not run", cl.name)
			}
			ver := cl.version()
			seen := map[string]bool{}
			for _, cp := range caps {
				for _, in := range []classify.Input{
					{JA4: cp.JA4, ALPN: cp.ALPN},
					{JA4: cp.JA4, ALPN: cp.ALPN, UserAgent: cp.UserAgent},
				} {
					r := c.Classify(in)
					if r.Client != w.client || r.Family != w.family {
						t.Errorf("%s (%s), ua %q: classified %v %q, want %v %q\n why: %s\n raw: %s",
							cl.name, ver, in.UserAgent, r.Client, r.Family, w.client, w.family, r.Why, cp.JA4Raw)
					}
					if r.Match == classify.MatchNone {
						t.Errorf("%s: JA4 %s is not in clients.yaml (classified by the fallback: %s); run with -update and add it", cl.name, cp.JA4, r.Why)
					}
					if w.client == policy.ClientMobileDesktop && !slices.Contains(r.UATags, policy.UANativeClient) {
						t.Errorf("%s: tags %v lack native_client", cl.name, r.UATags)
					}
				}
				r := c.Classify(classify.Input{JA4: cp.JA4, ALPN: cp.ALPN, UserAgent: cp.UserAgent})
				t.Logf("%s %s alpn=%q sni=%q ua=%q\n  %s", ver, cp.JA4, cp.ALPN, cp.SNI, cp.UserAgent, r.Why)
				if seen[cp.JA4] {
					continue
				}
				seen[cp.JA4] = true
				all = append(all, recorded{Name: cl.name, Version: ver, JA4: cp.JA4, JA4Raw: cp.JA4Raw, ALPN: cp.ALPN,
					SNI: cp.SNI, UserAgent: cp.UserAgent, Client: w.client.String(), Family: w.family})
			}
		})
	}
	if *update && !t.Failed() {
		writeCaptures(t, all)
	}
}

func writeCaptures(t *testing.T, all []recorded) {
	var b strings.Builder
	b.WriteString("# Real clients' ClientHellos as proxy.ReadClientHello read them, and the\n")
	b.WriteString("# classification each must get. Written by\n")
	b.WriteString("#   go test ./proxy/classify/clienttest -run TestClients -update   (as root)\n")
	b.WriteString("# and replayed by proxy/classify's TestRecordedCaptures. Do not edit.\n")
	b.WriteString("captured: " + time.Now().UTC().Format(time.DateOnly) + "\n")
	out, err := yaml.Marshal(map[string][]recorded{"clients": all})
	if err != nil {
		t.Fatal(err)
	}
	b.Write(out)
	path := filepath.FromSlash(capturesFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d captures)", path, len(all))
}
