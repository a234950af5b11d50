package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadOrCreateCACreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: os.ModeDir | 0o700, filepath.Join(dir, caKeyFile): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s has mode %v, want %v", path, st.Mode(), want)
		}
	}
	keyPEM, _ := os.ReadFile(filepath.Join(dir, caKeyFile))
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Error("key is not PKCS#8 PEM")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}

	c := ca.Certificate()
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	switch {
	case !ok || pub.Curve != elliptic.P256():
		t.Errorf("CA key is %T, want ECDSA P-256", c.PublicKey)
	case !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero:
		t.Errorf("basic constraints: CA %v, MaxPathLen %d, zero %v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
	case c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign:
		t.Errorf("key usage %v", c.KeyUsage)
	case len(c.SubjectKeyId) != 20:
		t.Errorf("subject key id %x", c.SubjectKeyId)
	case !strings.HasPrefix(c.Subject.CommonName, "Portcullis CA ") || len(c.Subject.CommonName) <= len("Portcullis CA "):
		t.Errorf("common name %q", c.Subject.CommonName)
	case len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != "Portcullis":
		t.Errorf("organization %q", c.Subject.Organization)
	case c.NotAfter.Sub(c.NotBefore) < 10*365*24*time.Hour:
		t.Errorf("validity %v to %v", c.NotBefore, c.NotAfter)
	case c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() < 64:
		t.Errorf("serial %v", c.SerialNumber)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("self-signature: %v", err)
	}
	if !bytes.Contains(ca.CertPEM(), []byte("BEGIN CERTIFICATE")) {
		t.Error("CertPEM is not a PEM certificate")
	}
}

func TestLoadOrCreateCAReloads(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.CertPEM(), again.CertPEM()) {
		t.Fatal("reloaded CA certificate differs")
	}
	if !first.key.Public().(*ecdsa.PublicKey).Equal(again.key.Public()) {
		t.Fatal("reloaded CA key differs")
	}
	// A leaf from the reloaded CA verifies against the original certificate.
	store := NewCertStore(again, CertStoreOptions{})
	defer store.Close()
	verifyLeaf(t, store, first, "reload.example")
}

func TestLoadOrCreateCAInstallsDiffer(t *testing.T) {
	a, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca, cb := a.Certificate(), b.Certificate()
	if ca.Subject.CommonName == cb.Subject.CommonName || ca.SerialNumber.Cmp(cb.SerialNumber) == 0 ||
		bytes.Equal(ca.SubjectKeyId, cb.SubjectKeyId) || a.key.Public().(*ecdsa.PublicKey).Equal(b.key.Public()) {
		t.Fatal("two installs share a name, serial or key")
	}
}

func TestLoadOrCreateCARefuses(t *testing.T) {
	t.Run("group-readable key", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := LoadOrCreateCA(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, caKeyFile), 0o640); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateCA(dir)
		if !errors.Is(err, ErrCAKeyPermissions) || !strings.Contains(err.Error(), "0640") {
			t.Fatalf("got %v, want ErrCAKeyPermissions naming the mode", err)
		}
	})
	t.Run("mismatched certificate", func(t *testing.T) {
		dirA, dirB := t.TempDir(), t.TempDir()
		if _, err := LoadOrCreateCA(dirA); err != nil {
			t.Fatal(err)
		}
		b, err := LoadOrCreateCA(dirB)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dirA, caCertFile), b.CertPEM(), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateCA(dirA); !errors.Is(err, ErrCAMismatch) {
			t.Fatalf("got %v, want ErrCAMismatch", err)
		}
	})
	t.Run("key without certificate", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := LoadOrCreateCA(dir); err != nil {
			t.Fatal(err)
		}
		keyBefore, _ := os.ReadFile(filepath.Join(dir, caKeyFile))
		if err := os.Remove(filepath.Join(dir, caCertFile)); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateCA(dir); err == nil || !strings.Contains(err.Error(), "without") {
			t.Fatalf("got %v, want an error about the missing certificate", err)
		}
		if keyAfter, _ := os.ReadFile(filepath.Join(dir, caKeyFile)); !bytes.Equal(keyBefore, keyAfter) {
			t.Fatal("existing key was replaced")
		}
	})
}
