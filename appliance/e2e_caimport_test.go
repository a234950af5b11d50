package appliance

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// labCACert is one CA of a test enterprise PKI.
type labCACert struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

func newLabCACert(t *testing.T, name string, parent *labCACert, edit func(*x509.Certificate)) *labCACert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Example Corp"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(2, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if edit != nil {
		edit(tmpl)
	}
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &labCACert{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func writeKeyFile(t *testing.T, path string, key crypto.Signer) {
	t.Helper()
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestE2ECAImportReload: an intermediate CA two levels under an enterprise
// root is imported with `portcullis ca import` into the running
// appliance's state and taken on SIGHUP, without a restart: a leaf cached
// under the generated CA is forgotten, and curl and a Go client trusting
// only the enterprise root verify the intercepted site (served leaf,
// issuing CA, policy CA). A bad import is refused with the reason and
// changes nothing; a CA broken on disk is refused at the reload and the
// imported CA keeps serving.
func TestE2ECAImportReload(t *testing.T) {
	// curl refusing the appliance's leaf (trusting the wrong CA on
	// purpose) would otherwise be learnt as a pinning client and spliced.
	l := newE2ELab(t, "clients:\n  pass_through:\n    learn: false\n")
	l.start()
	defer l.stop(syscall.SIGTERM)
	generated := l.applianceCA()

	root := newLabCACert(t, "Example Corp Root", nil, nil)
	policyCA := newLabCACert(t, "Example Corp Policy CA", root, func(c *x509.Certificate) { c.MaxPathLen = 1 })
	issuing := newLabCACert(t, "Example Corp Inspection CA", policyCA, func(c *x509.Certificate) { c.MaxPathLenZero = true })
	rootFile, chainFile, keyFile := filepath.Join(l.dir, "corp-root.pem"), filepath.Join(l.dir, "inspection-chain.pem"), filepath.Join(l.dir, "inspection.key")
	if err := os.WriteFile(rootFile, root.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chainFile, bytes.Join([][]byte{issuing.pem, policyCA.pem, root.pem}, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	writeKeyFile(t, keyFile, issuing.key)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	curl := func(name, caFile string) (string, error) {
		out, err := l.Client.Exec(ctx, "curl", "-sS", "--cacert", caFile, "--resolve", name+":443:"+originGood.String(),
			"-o", "/dev/null", "-w", "%{http_code}", "https://"+name+"/")
		return strings.TrimSpace(string(out)), err
	}
	// A leaf for origin.lab is cached under the generated CA.
	if out, err := curl("origin.lab", filepath.Join(l.dir, "appliance-ca.pem")); err != nil || out != "200" {
		t.Fatalf("curl with the generated CA: %v %s\n%s", err, out, l.log())
	}
	if out, err := curl("origin.lab", rootFile); err == nil {
		t.Fatalf("curl trusting the enterprise root verified before the import: %s", out)
	}

	ca := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, portcullisBinary(t), append([]string{"ca"}, append(args, "--config", l.cfgPath)...)...).CombinedOutput()
		return string(out), err
	}
	out, err := ca("import", "--cert", chainFile, "--key", keyFile, "--replace")
	if err != nil {
		t.Fatalf("ca import: %v\n%s", err, out)
	}
	for _, want := range []string{`imported CA "Example Corp Inspection CA"`, `with 2 issuer certificate(s) above it, up to "Example Corp Root"`, "reload the appliance"} {
		if !strings.Contains(out, want) {
			t.Errorf("ca import said %q, want %q", out, want)
		}
	}
	// Until the reload, the running daemon keeps its CA.
	if out, err := curl("origin.lab", filepath.Join(l.dir, "appliance-ca.pem")); err != nil || out != "200" {
		t.Fatalf("before the reload: %v %s", err, out)
	}
	hup := func(wantLog string) {
		t.Helper()
		before := strings.Count(l.log(), wantLog)
		if err := l.proc.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(l.log(), wantLog) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log after SIGHUP:\n%s", wantLog, l.log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	hup("CA reloaded: new leaves chain to it")

	t.Run("clients trusting only the root", func(t *testing.T) {
		if out, err := curl("origin.lab", rootFile); err != nil || out != "200" {
			t.Fatalf("curl trusting the enterprise root after the reload: %v %s\n%s", err, out, l.log())
		}
		if out, err := curl("origin.lab", filepath.Join(l.dir, "appliance-ca.pem")); err == nil {
			t.Errorf("the generated CA still verifies after the reload (cached leaf?): %s", out)
		}
		c := l.client(netip.AddrPortFrom(originGood, 443), pool(root.cert), true)
		resp, err := c.Get("https://origin.lab/")
		if err != nil {
			t.Fatalf("Go client trusting the root: %v", err)
		}
		resp.Body.Close()
		peers := resp.TLS.PeerCertificates
		if len(peers) != 3 || !peers[1].Equal(issuing.cert) || !peers[2].Equal(policyCA.cert) {
			t.Errorf("served %d certificates, want leaf, issuing CA, policy CA", len(peers))
		}
		if chain := resp.TLS.VerifiedChains[0]; !chain[len(chain)-1].Equal(root.cert) {
			t.Errorf("verified to %q", chain[len(chain)-1].Subject.CommonName)
		}
		if got := l.get("http://127.0.0.1:9780/ca.crt"); got != string(issuing.pem) {
			t.Errorf("/ca.crt serves %q, want the imported CA", got)
		}
	})

	t.Run("bad import refused, imported CA keeps serving", func(t *testing.T) {
		gapFile := filepath.Join(l.dir, "gap-chain.pem")
		if err := os.WriteFile(gapFile, bytes.Join([][]byte{issuing.pem, root.pem}, nil), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := ca("import", "--cert", gapFile, "--key", keyFile, "--replace")
		if err == nil || !strings.Contains(out, `"Example Corp Root" is not in the chain of "Example Corp Inspection CA"`) {
			t.Fatalf("import of a chain with a gap: %v\n%s", err, out)
		}
		// Broken on disk behind the importer's back: the reload refuses it.
		crt := filepath.Join(l.dir, "state", "ca", "ca.crt")
		good, err := os.ReadFile(crt)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crt, bytes.Join([][]byte{issuing.pem, generatedPEM(generated)}, nil), 0o644); err != nil {
			t.Fatal(err)
		}
		hup("reload refused, running CA kept")
		if !strings.Contains(l.log(), `did not issue \"Example Corp Inspection CA\"`) && !strings.Contains(l.log(), `did not issue "Example Corp Inspection CA"`) {
			t.Errorf("the refusal does not say why:\n%s", l.log())
		}
		// A name never minted before gets its leaf from the imported CA.
		if out, err := curl("chat.lab", rootFile); err != nil || out != "200" {
			t.Fatalf("new name after the refused reload: %v %s\n%s", err, out, l.log())
		}
		if err := os.WriteFile(crt, good, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(filepath.Join(l.dir, "state", "ca", "ca.key")); err != nil {
		t.Fatal(err)
	}
	if l.proc == nil || l.proc.ProcessState != nil {
		t.Fatal("the appliance did not keep running")
	}
}

func generatedPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
