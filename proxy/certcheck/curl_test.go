package certcheck_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/lab/revocationlab"
	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// TestCurlClientCertificate presents client certificates with Debian's curl
// (OpenSSL), not a Go client, to a loopback server running ValidClient.
func TestCurlClientCertificate(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	srv := newClientServer(t, p, c, loadCAs(t, [][]byte{p.root.PEM, p.inter.PEM}), certcheck.ClientPolicy{CheckCRL: true})
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rootPEM := write("root.pem", p.root.PEM)
	present := func(t *testing.T, srv *clientServer, is *revocationlab.Issued, name string) certcheck.ClientResult {
		args := []string{"-sS", "--noproxy", "*", "--max-time", "10", "--cacert", rootPEM}
		if is != nil {
			args = append(args, "--cert", write(name+".pem", is.CertPEM), "--key", write(name+".key", is.KeyPEM))
		}
		out, err := exec.Command(curl, append(args, srv.url)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		var res certcheck.ClientResult
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("server said %q: %v", out, err)
		}
		return res
	}

	t.Run("valid", func(t *testing.T) {
		res := present(t, srv, clientCert(t, p.inter, revocationlab.CertOptions{}), "alice")
		wantClient(t, res, nil, certcheck.ClientOK)
	})
	t.Run("RSA 2048 key", func(t *testing.T) {
		res := present(t, srv, clientCert(t, p.inter, revocationlab.CertOptions{Key: revocationlab.RSA2048}), "rsa")
		wantClient(t, res, nil, certcheck.ClientOK)
	})
	t.Run("revoked", func(t *testing.T) {
		is := clientCert(t, p.inter, revocationlab.CertOptions{})
		p.inter.Revoke(is.Cert)
		// A checker that has not cached the CRL yet.
		srv := newClientServer(t, p, newChecker(t, certcheck.Config{}), loadCAs(t, [][]byte{p.root.PEM, p.inter.PEM}), certcheck.ClientPolicy{CheckCRL: true})
		res := present(t, srv, is, "revoked")
		wantClient(t, res, nil, certcheck.ClientRevoked)
	})
	t.Run("wrong CA", func(t *testing.T) {
		other, err := revocationlab.NewRoot(nil, "Other Root")
		if err != nil {
			t.Fatal(err)
		}
		res := present(t, srv, clientCert(t, other, revocationlab.CertOptions{}), "stranger")
		wantClient(t, res, nil, certcheck.ClientUntrusted)
	})
	t.Run("none", func(t *testing.T) {
		wantClient(t, present(t, srv, nil, ""), nil, certcheck.ClientNoCertificate)
	})
}
