package browser

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ImportPKCS12 adds a client certificate with its key (a PKCS #12 file and
// its password) to the browser's NSS database with pk12util (Debian
// package libnss3-tools). The database is shared SQLite, so a running
// Chromium sees the certificate at its next TLS client-certificate request.
func (b *Browser) ImportPKCS12(t testing.TB, p12 []byte, password string) {
	t.Helper()
	if _, err := exec.LookPath("pk12util"); err != nil {
		t.Fatalf("browser: pk12util not found (Debian package libnss3-tools): %v", err)
	}
	f, err := os.CreateTemp(b.home, "client-*.p12")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(p12); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	db := "sql:" + filepath.Join(b.home, ".pki", "nssdb")
	out, err := exec.Command("pk12util", "-i", f.Name(), "-d", db, "-W", password, "-K", "").CombinedOutput()
	if err != nil {
		t.Fatalf("browser: pk12util -i: %v: %s", err, out)
	}
}

// AutoSelectCertificate makes Chromium present, without asking, a client
// certificate issued by issuerCN to the URLs matching pattern (Chromium's
// AutoSelectCertificateForUrls policy; there is no command-line switch for
// it). Debian's Chromium reads managed policies from
// /etc/chromium/policies/managed at start, so call this before Start. The
// file has a unique name and is removed when the test ends; other browsers
// started meanwhile see the policy too, which is harmless as long as
// issuerCN is unique to the test (only servers asking for that issuer's
// certificates are affected).
func AutoSelectCertificate(t testing.TB, pattern, issuerCN string) {
	t.Helper()
	dir := "/etc/chromium/policies/managed"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browser: create %s: %v", dir, err)
	}
	rule, err := json.Marshal(map[string]any{"pattern": pattern, "filter": map[string]any{"ISSUER": map[string]string{"CN": issuerCN}}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := json.Marshal(map[string]any{"AutoSelectCertificateForUrls": []string{string(rule)}})
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	file := filepath.Join(dir, fmt.Sprintf("portcullis-test-%s.json", hex.EncodeToString(b[:])))
	if err := os.WriteFile(file, pol, 0o644); err != nil {
		t.Fatalf("browser: write policy: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(file) })
}
