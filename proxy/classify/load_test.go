package classify

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultLoads(t *testing.T) {
	c, err := Load(strings.NewReader(string(embeddedData)))
	if err != nil {
		t.Fatalf("embedded clients.yaml: %v", err)
	}
	if c.Len() < 20 || Default().Len() != c.Len() {
		t.Errorf("embedded data: %d entries (Default %d)", c.Len(), Default().Len())
	}
	for _, name := range []string{"chromium", "firefox", "safari", "curl", "wget", "python", "go", "git", "node", "openssl"} {
		if c.families[name] == nil {
			t.Errorf("family %s missing from the embedded data", name)
		}
	}
}

const validHead = `format: 1
families:
  chromium: browser
  curl: mobile_desktop
fingerprints:
  - ja4: t13d1517h2_8daaf6152771_cb7bf5808d99
    family: chromium
    source: test
`

func TestLoadMinimal(t *testing.T) {
	c, err := Load(strings.NewReader(validHead))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Classify(Input{JA4: ja4Chromium, ALPN: h2h1, UserAgent: uaChrome120}); r.Family != "chromium" || len(r.UATags) != 0 {
		t.Errorf("no thresholds: %+v", r)
	}
	// JSON is YAML too.
	json := `{"format": 1, "families": {"curl": "mobile_desktop"}, "fingerprints": [{"ja4": "t13d3112h2_e8f1e7e78f70_*", "family": "curl", "source": "json"}]}`
	c, err = Load(strings.NewReader(json))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Classify(Input{JA4: ja4Curl}); r.Family != "curl" || r.Match != MatchCipherSet {
		t.Errorf("json data: %+v", r)
	}
}

// Every refusal names the line and column of what is wrong.
func TestLoadErrors(t *testing.T) {
	for _, c := range []struct {
		name, data string
		want       []string // each a substring of one error, "line:col: …"
	}{
		{"empty", "", []string{"empty data file"}},
		{"yaml syntax", "format: 1\nfamilies: [\n", []string{"line 2: did not find expected node content"}},
		{"unknown top key", validHead + "extra: 1\n", []string{"9:1: data file: unknown key \"extra\""}},
		{"missing keys", "format: 1\n", []string{`missing key "families"`, `missing key "fingerprints"`}},
		{"wrong format", strings.Replace(validHead, "format: 1", "format: 2", 1), []string{"1:9: format \"2\": this version reads format 1"}},
		{"bad client kind", strings.Replace(validHead, "curl: mobile_desktop", "curl: native", 1), []string{"4:9: families.curl: \"native\": want browser or mobile_desktop"}},
		{"reserved family", validHead[:len("format: 1\nfamilies:\n")] + "  unknown: browser\n" + validHead[len("format: 1\nfamilies:\n"):], []string{"3:3: families: \"unknown\""}},
		{"undeclared family", strings.Replace(validHead, "family: chromium", "family: chrome", 1), []string{"7:13: fingerprints[0].family \"chrome\": not declared in families"}},
		{"unknown entry key", validHead + "    note: x\n", []string{"9:5: fingerprints[0]: unknown key \"note\""}},
		{"missing source", strings.Replace(validHead, "    source: test\n", "", 1), []string{"6:5: fingerprints[0]: missing key \"source\""}},
		{"empty source", strings.Replace(validHead, "source: test", "source: \"  \"", 1), []string{"8:13: fingerprints[0].source: empty"}},
		{"short ja4", strings.Replace(validHead, "cb7bf5808d99", "cb7bf5808d9", 1), []string{"6:10: fingerprints[0].ja4", "JA4_c must be 12 lowercase hex digits"}},
		{"uppercase hash", strings.Replace(validHead, "8daaf6152771", "8DAAF6152771", 1), []string{"6:10:", "JA4_b must be 12 lowercase hex digits"}},
		{"wildcard cipher set", strings.Replace(validHead, "8daaf6152771", "*", 1), []string{"JA4_b (the cipher set) must be given"}},
		{"bad ja4_a", strings.Replace(validHead, "t13d1517h2", "x13d1517h2", 1), []string{"JA4_a character 1 ('x') is not valid there"}},
		{"duplicate", validHead + "  - ja4: t13d1517h2_8daaf6152771_cb7bf5808d99\n    family: curl\n    source: again\n", []string{"9:10: fingerprints[1].ja4 t13d1517h2_8daaf6152771_cb7bf5808d99: already listed at line 6"}},
		{"repeated key", validHead + "    family: curl\n", []string{"9:5: fingerprints[0]: key \"family\" repeated"}},
		{"fingerprints not a list", "format: 1\nfamilies: {}\nfingerprints: {}\n", []string{"3:15: fingerprints: want a list"}},
		{"unknown browser product", validHead + "outdated_browsers:\n  chromium: 100\n", []string{"10:3: outdated_browsers: product \"chromium\" is never reported"}},
		{"bad major", validHead + "outdated_browsers:\n  chrome: 1.5\n", []string{"10:11: outdated_browsers.chrome: \"1.5\": want a major version number"}},
		{"unknown os", validHead + "outdated_os:\n  windows10:\n    below: \"10\"\n", []string{"10:3: outdated_os: system \"windows10\""}},
		{"bad os version", validHead + "outdated_os:\n  macos:\n    below: \"12.x\"\n", []string{"11:12: outdated_os.macos.below: \"12.x\""}},
		{"os rule without below", validHead + "outdated_os:\n  macos:\n    frozen: [\"10.15.7\"]\n", []string{"11:5: outdated_os.macos: missing key \"below\""}},
		{"bad frozen", validHead + "outdated_os:\n  macos:\n    below: 12\n    frozen: [\"ten\"]\n", []string{"12:14: outdated_os.macos.frozen: \"ten\""}},
		{"several at once", strings.Replace(validHead, "family: chromium", "family: nope", 1) + "bogus: 1\n", []string{"not declared in families", "unknown key \"bogus\""}},
	} {
		_, err := Load(strings.NewReader(c.data))
		if err == nil {
			t.Errorf("%s: loaded, want an error", c.name)
			continue
		}
		if !errors.Is(err, ErrInvalidData) {
			t.Errorf("%s: %v does not match ErrInvalidData", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n%v\nlacks %q", c.name, err, w)
			}
		}
	}
}

func TestLoadFileNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(path, []byte(validHead+"extra: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(path)
	var de *DataError
	if err == nil || !strings.Contains(err.Error(), path+":9:1: ") || !errors.As(err, &de) || de.Line != 9 {
		t.Errorf("LoadFile error = %v, want %s:9:1: … matching *DataError", err, path)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrInvalidData) {
		t.Errorf("missing file: %v", err)
	}
}

func TestLoadRefusesHugeFiles(t *testing.T) {
	_, err := Load(strings.NewReader(strings.Repeat("#", maxDataFile+1)))
	if !errors.Is(err, ErrInvalidData) {
		t.Errorf("huge file: %v", err)
	}
}

// Precedence: whole JA4, then cipher set, then patterns in file order.
func TestLoadPrecedence(t *testing.T) {
	data := `format: 1
families: {a: browser, b: mobile_desktop, c: mobile_desktop, d: browser}
fingerprints:
  - {ja4: "t13?15??h2_8daaf6152771_*", family: d, source: first pattern}
  - {ja4: "t13?1???h2_8daaf6152771_*", family: c, source: second pattern}
  - {ja4: t13d1517h2_8daaf6152771_*, family: b, source: cipher set}
  - {ja4: t13d1517h2_8daaf6152771_cb7bf5808d99, family: a, source: whole}
`
	c, err := Load(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for ja4, want := range map[string]string{
		"t13d1517h2_8daaf6152771_cb7bf5808d99": "a",
		"t13d1517h2_8daaf6152771_000000000000": "b",
		"t13d1518h2_8daaf6152771_000000000000": "d",
		"t13d1618h2_8daaf6152771_000000000000": "c",
		"t13d1618h1_8daaf6152771_000000000000": FamilyUnknown,
	} {
		if r := c.Classify(Input{JA4: ja4, ALPN: h2h1}); r.Family != want {
			t.Errorf("%s: family %s, want %s (%s)", ja4, r.Family, want, r.Why)
		}
	}
}
