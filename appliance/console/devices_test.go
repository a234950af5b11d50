package console

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// testCA is a CA made here with crypto/x509.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

func newTestCA(t *testing.T, cn string, isCA bool, notBefore, notAfter time.Time) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"Corp"}},
		NotBefore: notBefore, NotAfter: notAfter, BasicConstraintsValid: true, IsCA: isCA}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) crl(t *testing.T, next time.Time) []byte {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: next,
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(42), RevocationTime: time.Now().Add(-time.Hour)}}}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// checkSetX509 stands in for the appliance's loader here (the console may
// not import it): every bundle parses as CA certificates, every CRL
// verifies against one of them.
func checkSetX509(cas, crls [][]byte) error {
	var all []*x509.Certificate
	for i, b := range cas {
		certs, err := parseCerts(b)
		if err != nil {
			return fmt.Errorf("bundle %d: %v", i+1, err)
		}
		all = append(all, certs...)
	}
	for i, b := range crls {
		crl, err := parseCRL(b)
		if err != nil {
			return fmt.Errorf("CRL %d: %v", i+1, err)
		}
		ok := false
		for _, c := range all {
			if crl.CheckSignatureFrom(c) == nil {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("CRL %d: no configured CA issued it", i+1)
		}
	}
	return nil
}

type fakePassThrough struct {
	mu      sync.Mutex
	entries []PassThroughEntry
}

func (f *fakePassThrough) list() []PassThroughEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]PassThroughEntry(nil), f.entries...)
}

func (f *fakePassThrough) remove(host, family string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, e := range f.entries {
		if e.Host == host && (family == "" || e.Family == family) {
			f.entries = append(f.entries[:i], f.entries[i+1:]...)
			return true
		}
	}
	return false
}

type devicesFixture struct {
	tc       *testConsole
	dir      string
	applCA   *testCA
	pass     *fakePassThrough
	admin    *client
	auditor  *client
	configCA string
}

func newDevicesFixture(t *testing.T) *devicesFixture {
	t.Helper()
	f := &devicesFixture{applCA: newTestCA(t, "Portcullis appliance CA", true, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour)),
		pass: &fakePassThrough{entries: []PassThroughEntry{{Host: "pinned.example.com", Family: "okhttp", Expires: time.Now().Add(time.Hour)}}}}
	conf := newTestCA(t, "Configured device root", true, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	f.configCA = filepath.Join(t.TempDir(), "configured.pem")
	if err := os.WriteFile(f.configCA, conf.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	f.tc = newTestConsole(t, func(o *Options) {
		f.dir = filepath.Join(o.StateDir, "devices")
		keyDER, _ := x509.MarshalPKCS8PrivateKey(f.applCA.key)
		withKey := append(append([]byte(nil), f.applCA.pem...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
		o.Devices = &DevicesOptions{Dir: f.dir, CheckSet: checkSetX509, Live: func() bool { return true },
			Configured:  func() ([]string, []string) { return []string{f.configCA}, nil },
			ApplianceCA: func() []byte { return withKey }, // a hook that hands over too much: only the certificate may leave
			PassThrough: f.pass.list, RemovePassThrough: f.pass.remove, StaticBypass: []string{"*.bank.example"}}
	})
	f.admin = f.tc.setup("admin", adminPW)
	resp, m := f.admin.api("POST", "/api/v1/users", map[string]any{"name": "audrey", "password": auditorPW, "role": "auditor"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create auditor: %d %v", resp.StatusCode, m)
	}
	var r *http.Response
	f.auditor, r, _ = f.tc.login("audrey", auditorPW, nil)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("auditor login: %d", r.StatusCode)
	}
	return f
}

// Uploads are checked (CA, validity, PEM, size, no key), staged in the
// tray with a summary, written on apply under the devices directory with
// one reload, shown with subject, validity and fingerprint; CRLs with
// issuer and next update; an uploaded file can be removed the same way.
func TestDevicesUploadThroughTray(t *testing.T) {
	f := newDevicesFixture(t)
	admin := f.admin
	now := time.Now()
	ca := newTestCA(t, "Corp Device CA", true, now.Add(-time.Hour), now.Add(90*24*time.Hour))

	leaf := newTestCA(t, "laptop-17", false, now.Add(-time.Hour), now.Add(time.Hour))
	expired := newTestCA(t, "Old CA", true, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	keyDER, _ := x509.MarshalPKCS8PrivateKey(ca.key)
	for _, c := range []struct {
		name, pem, want string
	}{
		{"leaf", string(leaf.pem), `"laptop-17" is not a CA certificate`},
		{"expired", string(expired.pem), `"Old CA" expired on`},
		{"garbage", "hello, I am not a certificate", "not a certificate"},
		{"bad pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a valid certificate"},
		{"huge", strings.Repeat(string(ca.pem), 1+maxDeviceUpload/len(ca.pem)), "at most 256 KiB"},
		{"with key", string(ca.pem) + string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})), "private key"},
		{"empty", "  \n", "empty"},
	} {
		resp, m := admin.api("POST", "/api/v1/devices/cas", map[string]any{"pem": c.pem})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(fmt.Sprint(m["error"]), c.want) {
			t.Errorf("%s: %d %v, want 400 with %q", c.name, resp.StatusCode, m["error"], c.want)
		}
	}
	if _, tv := admin.api("GET", "/api/v1/tray", nil); len(tv["changes"].([]any)) != 0 {
		t.Fatalf("refused uploads were staged: %v", tv["changes"])
	}
	// A CRL no CA issued is refused by the set check.
	stranger := newTestCA(t, "Stranger", true, now.Add(-time.Hour), now.Add(time.Hour))
	if resp, m := admin.api("POST", "/api/v1/devices/crls", map[string]any{"pem": string(stranger.crl(t, now.Add(time.Hour)))}); resp.StatusCode != http.StatusUnprocessableEntity ||
		!strings.Contains(fmt.Sprint(m["error"]), "no configured CA issued it") {
		t.Errorf("stranger CRL: %d %v", resp.StatusCode, m)
	}

	resp, m := admin.api("POST", "/api/v1/devices/cas", map[string]any{"pem": string(ca.pem), "note": "corp laptops"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("stage CA: %d %v", resp.StatusCode, m)
	}
	caFile := m["file"].(string)
	if !strings.HasPrefix(caFile, "@devices/ca/corp-device-ca-") || !strings.HasSuffix(caFile, ".pem") {
		t.Errorf("staged file %q", caFile)
	}
	// The same CA cannot be staged twice.
	if resp, _ := admin.api("POST", "/api/v1/devices/cas", map[string]any{"pem": string(ca.pem)}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("second upload of the same CA: %d", resp.StatusCode)
	}
	// The CRL of a CA staged in the same tray is accepted.
	resp, m = admin.api("POST", "/api/v1/devices/crls", map[string]any{"pem": string(ca.crl(t, now.Add(7*24*time.Hour)))})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("stage CRL: %d %v", resp.StatusCode, m)
	}
	crlFile := m["file"].(string)
	_, tv := admin.api("GET", "/api/v1/tray", nil)
	changes := tv["changes"].([]any)
	if len(changes) != 2 {
		t.Fatalf("tray: %v", changes)
	}
	if s := changes[0].(map[string]any)["summary"].(string); !strings.Contains(s, `corp laptops — device CA "Corp Device CA"`) || !strings.Contains(s, "SHA-256") {
		t.Errorf("summary %q", s)
	}
	if s := changes[1].(map[string]any)["summary"].(string); !strings.Contains(s, `CRL of "Corp Device CA"`) || !strings.Contains(s, "1 revoked") {
		t.Errorf("CRL summary %q", s)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "ca")); err == nil {
		if ents, _ := os.ReadDir(filepath.Join(f.dir, "ca")); len(ents) != 0 {
			t.Fatal("written before apply")
		}
	}
	reloads := f.tc.reloads.Load()
	if code, m := admin.applyTray(""); code != http.StatusOK {
		t.Fatalf("apply: %d %v", code, m)
	}
	if got := f.tc.reloads.Load(); got != reloads+1 {
		t.Errorf("%d reloads, want 1", got-reloads)
	}
	b, err := os.ReadFile(filepath.Join(f.dir, "ca", strings.TrimPrefix(caFile, "@devices/ca/")))
	if err != nil || !bytes.Equal(b, ca.pem) {
		t.Fatalf("written CA: %v %q", err, b)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "crl", strings.TrimPrefix(crlFile, "@devices/crl/"))); err != nil {
		t.Fatal(err)
	}

	_, dv := admin.api("GET", "/api/v1/devices", nil)
	cas := dv["cas"].([]any)
	if len(cas) != 2 {
		t.Fatalf("cas: %v", cas)
	}
	conf, up := cas[0].(map[string]any), cas[1].(map[string]any)
	if conf["source"] != "configured" || conf["removable"] != false || !strings.Contains(conf["subject"].(string), "Configured device root") {
		t.Errorf("configured CA: %v", conf)
	}
	if up["source"] != "uploaded" || up["file"] != caFile || up["sha256"] != fingerprint(ca.cert.Raw) || up["root"] != true ||
		!strings.Contains(up["subject"].(string), "CN=Corp Device CA") || up["not_after"] != ca.cert.NotAfter.UTC().Format(time.RFC3339) {
		t.Errorf("uploaded CA: %v", up)
	}
	crl := dv["crls"].([]any)[0].(map[string]any)
	if !strings.Contains(crl["issuer"].(string), "Corp Device CA") || crl["revoked"] != float64(1) || crl["stale"] != false || crl["next_update"] == nil {
		t.Errorf("crl: %v", crl)
	}
	// Revisions keep the upload like any file.
	if _, revs := admin.api("GET", "/api/v1/policies/revisions", nil); !strings.Contains(fmt.Sprint(revs), caFile) {
		t.Errorf("no revision for %s: %v", caFile, revs)
	}

	// Remove: the CA's CRL first would leave the CRL without its CA, so
	// removing the CA alone is refused.
	if resp, m := admin.api("DELETE", "/api/v1/devices/files?file="+url.QueryEscape(caFile), nil); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("removing the CA of an uploaded CRL: %d %v", resp.StatusCode, m)
	}
	for _, f := range []string{crlFile, caFile} {
		if resp, m := admin.api("DELETE", "/api/v1/devices/files?file="+url.QueryEscape(f), nil); resp.StatusCode != http.StatusCreated {
			t.Fatalf("stage removal of %s: %d %v", f, resp.StatusCode, m)
		}
	}
	for _, bad := range []string{"base.yaml", "@devices/ca/../../x.pem", "@config"} {
		if resp, _ := admin.api("DELETE", "/api/v1/devices/files?file="+url.QueryEscape(bad), nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("remove %q: %d, want 400", bad, resp.StatusCode)
		}
	}
	if code, m := admin.applyTray(""); code != http.StatusOK {
		t.Fatalf("apply removal: %d %v", code, m)
	}
	if ents, _ := os.ReadDir(filepath.Join(f.dir, "ca")); len(ents) != 0 {
		t.Errorf("left after removal: %v", ents)
	}
}

// A reload that refuses the set puts the files back.
func TestDevicesReloadRefusedRestores(t *testing.T) {
	var fail bool
	var dir string
	tc := newTestConsole(t, func(o *Options) {
		dir = filepath.Join(o.StateDir, "devices")
		o.Devices = &DevicesOptions{Dir: dir, CheckSet: checkSetX509}
		o.Reload = func() error {
			if fail {
				return errors.New("devices: the proxy refused the set")
			}
			return nil
		}
	})
	admin := tc.setup("admin", adminPW)
	ca := newTestCA(t, "Refused CA", true, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if resp, m := admin.api("POST", "/api/v1/devices/cas", map[string]any{"pem": string(ca.pem)}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("stage: %d %v", resp.StatusCode, m)
	}
	// Started without device CAs (Live unset): the page says the set
	// takes effect at the next restart instead of pretending.
	if _, page := admin.get("/devices"); !strings.Contains(page, `id="restart-note"`) || !strings.Contains(page, "take effect at the next restart") {
		t.Error("the devices page does not say that a restart is needed")
	}
	fail = true
	code, m := admin.applyTray("")
	if code == http.StatusOK || !strings.Contains(fmt.Sprint(m["error"]), "the proxy refused the set") {
		t.Fatalf("apply with a refusing reload: %d %v", code, m)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "ca")); len(ents) != 0 {
		t.Errorf("refused upload left on disk: %v", ents)
	}
}

// The appliance CA download carries the certificate and nothing else; the
// pass-through list is shown and its entries removable; auditors see
// everything and change nothing, in the API and in the page.
func TestDevicesCAPassThroughAndAuditor(t *testing.T) {
	f := newDevicesFixture(t)
	for _, c := range []*client{f.admin, f.auditor} {
		for _, p := range []string{"/devices/appliance-ca.crt", "/api/v1/devices/appliance-ca.crt"} {
			resp, body := c.get(p)
			if resp.StatusCode != 200 || strings.Contains(body, "PRIVATE") || body != string(f.applCA.pem) {
				t.Errorf("%s: %d %q", p, resp.StatusCode, body)
			}
			if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "portcullis-ca.crt") {
				t.Errorf("%s: Content-Disposition %q", p, cd)
			}
		}
	}
	_, dv := f.auditor.api("GET", "/api/v1/devices", nil)
	if aca := dv["appliance_ca"].(map[string]any); aca["sha256"] != fingerprint(f.applCA.cert.Raw) {
		t.Errorf("appliance CA: %v", aca)
	}
	if pt := dv["pass_through"].([]any); len(pt) != 1 || pt[0].(map[string]any)["host"] != "pinned.example.com" {
		t.Errorf("pass-through: %v", pt)
	}
	if st := dv["static_bypass"].([]any); len(st) != 1 || st[0] != "*.bank.example" {
		t.Errorf("static: %v", st)
	}

	ca := newTestCA(t, "Auditor CA", true, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/v1/devices/cas"}, {"POST", "/api/v1/devices/crls"}, {"DELETE", "/api/v1/devices/files?file=%40devices%2Fca%2Fx.pem"},
		{"DELETE", "/api/v1/passthrough?host=pinned.example.com"},
	} {
		if resp, _ := f.auditor.api(c.method, c.path, map[string]any{"pem": string(ca.pem)}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("auditor %s %s: %d, want 403", c.method, c.path, resp.StatusCode)
		}
	}
	_, page := f.auditor.get("/devices")
	if strings.Contains(page, `action="/devices/ca"`) || strings.Contains(page, `action="/devices/passthrough/remove"`) {
		t.Error("the auditor's page has change forms")
	}
	csrf := formToken(t, page)
	for _, p := range []string{"/devices/ca", "/devices/crl", "/devices/remove", "/devices/passthrough/remove"} {
		if resp, _ := f.auditor.post(p, url.Values{"csrf": {csrf}, "pem": {string(ca.pem)}, "host": {"pinned.example.com"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("auditor form %s: %d, want 403", p, resp.StatusCode)
		}
	}
	if len(f.pass.list()) != 1 {
		t.Fatal("the auditor removed an entry")
	}

	// The admin's page: the upload form works from the page too.
	_, page = f.admin.get("/devices")
	for _, want := range []string{"pinned.example.com", "okhttp", "*.bank.example", "Configured device root", fingerprint(f.applCA.cert.Raw)} {
		if !strings.Contains(page, want) {
			t.Errorf("devices page lacks %q", want)
		}
	}
	resp, body := f.admin.post("/devices/ca", url.Values{"csrf": {formToken(t, page)}, "pem": {string(ca.pem)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("page upload: %d %s", resp.StatusCode, body)
	}
	resp, body = f.admin.post("/devices/ca", url.Values{"csrf": {formToken(t, page)}, "pem": {"garbage"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not a certificate") {
		t.Errorf("page upload of garbage: %d", resp.StatusCode)
	}
	if resp, m := f.admin.api("DELETE", "/api/v1/passthrough?host=nowhere.example", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("remove missing entry: %d %v", resp.StatusCode, m)
	}
	if resp, m := f.admin.api("DELETE", "/api/v1/passthrough?host=pinned.example.com&family=okhttp", nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("remove entry: %d %v", resp.StatusCode, m)
	}
	if len(f.pass.list()) != 0 {
		t.Error("entry not removed")
	}
	if _, audit := f.admin.api("GET", "/api/v1/audit", nil); !strings.Contains(fmt.Sprint(audit), auditPassThroughRemove) {
		t.Errorf("no audit entry for the removal: %v", audit)
	}
}

func TestDevicesSettingsAPIDocumented(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"get /devices", "get /devices/appliance-ca.crt", "post /devices/cas", "post /devices/crls", "delete /devices/files",
		"get /passthrough", "delete /passthrough", "get /settings", "post /settings", "post /settings/exporters/{name}/test", "post /restart", "get /snmp/users", "post /snmp/users", "delete /snmp/users/{name}"} {
		method, path, _ := strings.Cut(e, " ")
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("openapi.yaml lacks %s", e)
		}
	}
}
