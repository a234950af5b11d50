package appliance

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/proxy"
)

// writeImportCA writes a CA certificate and key for key into dir as
// <name>.pem and <name>.key (key mode keyMode) and returns both paths.
func writeImportCA(t *testing.T, dir, name string, key crypto.Signer, keyMode os.FileMode, edit func(*x509.Certificate)) (string, string) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "Example Corp " + name, Organization: []string{"Example Corp"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(2, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), keyMode); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// TestCAImportCommand: `portcullis ca import` installs a checked enterprise
// CA where `ca cert` and the daemon find it, says to restart, never prints
// the key, refuses to overwrite an installed CA without --replace, and
// refuses pairs it cannot use with the reason.
func TestCAImportCommand(t *testing.T) {
	state, src := t.TempDir(), t.TempDir()
	cfg := writeConfig(t, "state_dir: "+state+"\n")
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certPath, keyPath := writeImportCA(t, src, "inspection-ca", p256, 0o600, nil)

	out, errOut, err := runCLI(t, "ca", "import", "--cert", certPath, "--key", keyPath, "--config", cfg)
	if err != nil {
		t.Fatalf("ca import: %v\n%s", err, errOut)
	}
	for _, want := range []string{`imported CA "Example Corp inspection-ca" (ECDSA P-256, valid until`, "SHA-256 ", "reload the appliance"} {
		if !strings.Contains(out, want) {
			t.Errorf("ca import said %q, want %q in it", out, want)
		}
	}
	if errOut != "" {
		t.Errorf("ca import warned %q for a clean CA", errOut)
	}
	printed, _, err := runCLI(t, "ca", "cert", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(certPath)
	if printed != string(want) {
		t.Errorf("ca cert after import printed\n%s\nwant the imported certificate\n%s", printed, want)
	}
	if st, err := os.Stat(filepath.Join(state, "ca", "ca.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("installed key: %v, mode %v", err, st.Mode().Perm())
	}

	// An installed CA stays unless --replace.
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	cert2, key2 := writeImportCA(t, src, "second-ca", rsaKey, 0o640, nil)
	_, _, err = runCLI(t, "ca", "import", "--cert", cert2, "--key", key2, "--config", cfg)
	if !errors.Is(err, proxy.ErrCAExists) || !strings.Contains(err.Error(), "inspection-ca") || !strings.Contains(err.Error(), "--replace") {
		t.Fatalf("second import without --replace: %v, want ErrCAExists naming the installed CA and --replace", err)
	}
	out, errOut, err = runCLI(t, "ca", "import", "--cert", cert2, "--key", key2, "--replace", "--config", cfg)
	if err != nil {
		t.Fatalf("ca import --replace: %v", err)
	}
	if !strings.Contains(out, "(RSA 2048,") || !strings.Contains(out, `replaced the CA "Example Corp inspection-ca"`) {
		t.Errorf("ca import --replace said %q", out)
	}
	if !strings.Contains(errOut, "warning: "+key2+" has mode 0640") {
		t.Errorf("no warning about the readable key file: %q", errOut)
	}
	for _, s := range []string{out, errOut} {
		if strings.Contains(s, "PRIVATE KEY") {
			t.Fatalf("ca import printed key material: %q", s)
		}
	}

	// Refusals name the reason; nothing changes.
	notCA, notCAKey := writeImportCA(t, src, "not-a-ca", p256, 0o600, func(c *x509.Certificate) { c.IsCA = false })
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakCert, weakKey := writeImportCA(t, src, "weak-ca", weak, 0o600, nil)
	for _, tc := range []struct{ cert, key, want string }{
		{notCA, notCAKey, "is not a CA certificate"},
		{weakCert, weakKey, "RSA key of 1024 bits is too weak (minimum 2048)"},
		{certPath, key2, "the key does not match the certificate"},
	} {
		_, _, err := runCLI(t, "ca", "import", "--cert", tc.cert, "--key", tc.key, "--replace", "--config", cfg)
		if !errors.Is(err, proxy.ErrCANotImportable) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("import of %s: %v, want %q", filepath.Base(tc.cert), err, tc.want)
		}
	}
	if again, _, _ := runCLI(t, "ca", "cert", "--config", cfg); again == printed {
		t.Error("ca cert shows the first CA after --replace")
	}

	// Missing flags are a usage error (exit 2).
	_, errOut, err = runCLI(t, "ca", "import", "--cert", certPath, "--config", cfg)
	if ExitCode(err) != 2 || !strings.Contains(errOut, "--cert and --key are both required") {
		t.Errorf("ca import without --key: %v %q, want a usage error", err, errOut)
	}
}

// TestCAImportOwnedByStateDirOwner: run as root for a state_dir the service
// user owns, the imported CA is the service user's, or the daemon could not
// read its key.
func TestCAImportOwnedByStateDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown (CI runs as root)")
	}
	state, src := t.TempDir(), t.TempDir()
	if err := os.Chown(state, 4242, 4343); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "state_dir: "+state+"\n")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certPath, keyPath := writeImportCA(t, src, "owned-ca", key, 0o600, nil)
	if _, errOut, err := runCLI(t, "ca", "import", "--cert", certPath, "--key", keyPath, "--config", cfg); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	for _, p := range []string{"ca", "ca/ca.key", "ca/ca.crt"} {
		st, err := os.Stat(filepath.Join(state, p))
		if err != nil {
			t.Fatal(err)
		}
		if uid, gid := statOwner(st); uid != 4242 || gid != 4343 {
			t.Errorf("%s owned by %d:%d, want 4242:4343", p, uid, gid)
		}
	}
}

func statOwner(st os.FileInfo) (uint32, uint32) {
	sys := st.Sys().(*syscall.Stat_t)
	return sys.Uid, sys.Gid
}
