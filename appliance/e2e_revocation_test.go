package appliance

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
	"github.com/portcullis-gw/portcullis/internal/lab/revocationlab"
)

// The revocation lab's services, in the origin namespace. Nothing listens on
// revLabDead, so a URL there fails at connect (RST): a responder that is down.
const (
	revLabResponder = "198.18.2.2:8080"
	revLabDead      = "198.18.2.2:8081"
	revLabHugeCRL   = "198.18.2.2:8082"
)

// hugeCRLBytes is more than the appliance's CRL download limit
// (certcheck.DefaultMaxCRLSize, 20 MiB).
const hugeCRLBytes = 24 << 20

// revOrigin is one origin of the revocation lab: its own address and name,
// a certificate, and what the client must see through the appliance.
type revOrigin struct {
	name   string
	addr   string // 198.18.2.x
	cert   tls.Certificate
	soft   string // "" = the origin's page, else a 502 naming this
	hard   string
	reason string // why, for failure messages

	issued *revocationlab.Issued
	issuer *revocationlab.CA
}

// TestE2EUpstreamRevocation runs the real appliance binary on the lab
// gateway with revocation checking soft, then hard, and curl in the client
// namespace reaches origins on their own addresses through the transparent
// datapath. The origins' certificates name OCSP responders and CRLs served
// from the origin namespace (revocationlab.StartOn), so the appliance fetches
// them across the lab like real ones: good → served; revoked by CRL, by
// OCSP, by a stapled response → the gateway's 502 naming the revocation; a
// forged staple claiming good is ignored (staple_rejected) and the CRL finds
// the revocation; RSA 1024 → "too weak"; responders down, a forged OCSP
// answer with an oversized CRL, or garbage from both → served and counted
// in soft mode (soft_fail), refused in hard mode (hard_refused).
func TestE2EUpstreamRevocation(t *testing.T) {
	lab.RequireRoot(t)
	g := lab.NewGateway(t)
	l := &e2eLab{Gateway: g, t: t, dir: t.TempDir()}
	var b [4]byte
	_, _ = rand.Read(b[:])
	l.pinDir = "/sys/fs/bpf/pc-e2e-" + hex.EncodeToString(b[:])
	l.cfgPath = filepath.Join(l.dir, "portcullis.yaml")
	t.Cleanup(func() { _ = os.RemoveAll(l.pinDir) })
	t.Cleanup(func() {
		l.stop(syscall.SIGKILL)
		_ = g.GW.DaemonCommand(context.Background(), portcullisBinary(t), "datapath", "detach", "-config", l.cfgPath).Run()
	})

	ln, err := g.Origin.Listen("tcp", revLabResponder)
	if err != nil {
		t.Fatal(err)
	}
	resp := revocationlab.StartOn(ln, "http://"+revLabResponder)
	t.Cleanup(func() { _ = resp.Close() })
	hugeCRLRequests := serveHugeCRL(t, g.Origin)

	origins, root := revocationOrigins(t, resp)
	for _, o := range origins {
		g.Origin.IP("addr", "add", o.addr+"/24", "dev", "eth0")
		serveRevOrigin(t, g.Origin, o)
	}
	rootFile := filepath.Join(l.dir, "rev-root.pem")
	if err := os.WriteFile(rootFile, root.PEM, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, mode := range []string{"soft", "hard"} {
		t.Run(mode, func(t *testing.T) {
			writeRevocationConfig(t, l, rootFile, mode)
			l.start()
			defer l.stop(syscall.SIGTERM)
			l.applianceCA() // writes appliance-ca.pem for curl
			for _, o := range origins {
				want := o.soft
				if mode == "hard" {
					want = o.hard
				}
				code, body := curlThrough(t, l, o)
				switch {
				case want == "" && (code != 200 || !strings.Contains(body, "hello from revocation lab")):
					t.Errorf("%s (%s): HTTP %d %q, want the origin's page", o.name, o.reason, code, body)
				case want != "" && (code != http.StatusBadGateway || !strings.Contains(body, want)):
					t.Errorf("%s (%s): HTTP %d %q, want the gateway's 502 naming %q", o.name, o.reason, code, body, want)
				}
			}
			m := l.get("http://127.0.0.1:9780/metrics")
			atLeast := map[string]float64{
				"revoked": 4, "weak_key": 1, "staple_rejected": 1,
				// the forged and the garbage OCSP answers; the garbage CRL;
				// two dead URLs and the oversized CRL
				"ocsp_rejected": 2, "crl_rejected": 1, "fetch_error": 3,
			}
			if mode == "soft" {
				atLeast["soft_fail"] = 3
			} else {
				atLeast["hard_refused"] = 3
			}
			for outcome, min := range atLeast {
				if v := certcheckMetric(m, outcome); v < min {
					t.Errorf("portcullis_certcheck_total{outcome=%q} = %v, want at least %v", outcome, v, min)
				}
			}
			if mode == "hard" {
				if v := certcheckMetric(m, "soft_fail"); v != 0 {
					t.Errorf("soft_fail = %v in hard mode", v)
				}
			}
			if n := hugeCRLRequests.Load(); n == 0 {
				t.Error("the oversized CRL was never requested")
			}
			// Hostile answers changed nothing about the daemon.
			if l.get("http://127.0.0.1:9780/healthz") != "ok\n" {
				t.Errorf("appliance unhealthy after the hostile origins\n%s", l.log())
			}
			if t.Failed() {
				t.Logf("metrics:\n%s\nlog:\n%s", grepLines(m, "portcullis_certcheck_total"), l.log())
			}
		})
	}
}

// revocationOrigins issues one certificate per case under a lab root (which
// it returns) and three issuing CAs: an honest one, one whose OCSP responder
// signs with a stranger's key, and one whose services answer garbage.
func revocationOrigins(t *testing.T, resp *revocationlab.Responder) ([]*revOrigin, *revocationlab.CA) {
	t.Helper()
	root, err := revocationlab.NewRoot(resp, "revocation lab root")
	if err != nil {
		t.Fatal(err)
	}
	ica, err := root.NewIntermediate("revocation lab issuing CA")
	if err != nil {
		t.Fatal(err)
	}
	forger, err := root.NewIntermediate("revocation lab CA with a forged responder")
	if err != nil {
		t.Fatal(err)
	}
	forger.SetOCSPMode(revocationlab.OCSPForged)
	garbler, err := root.NewIntermediate("revocation lab CA answering garbage")
	if err != nil {
		t.Fatal(err)
	}
	garbler.SetOCSPMode(revocationlab.OCSPGarbage)
	garbler.SetCRLMode(revocationlab.CRLGarbage)
	dead := []string{"http://" + revLabDead + "/ocsp"}
	deadCRL := []string{"http://" + revLabDead + "/crl.crl"}

	n := 20
	issue := func(ca *revocationlab.CA, name string, o revocationlab.CertOptions) *revOrigin {
		host := name + ".rev.lab"
		o.DNSNames = []string{host}
		o.CommonName = host
		is, err := ca.Issue(o)
		if err != nil {
			t.Fatal(err)
		}
		n++
		return &revOrigin{name: host, addr: "198.18.2." + strconv.Itoa(n), cert: is.TLS, issued: is, issuer: ca}
	}
	staple := func(o *revOrigin, mode revocationlab.OCSPMode) {
		s, err := o.issuer.Staple(o.issued.Cert, mode)
		if err != nil {
			t.Fatal(err)
		}
		o.cert.OCSPStaple = s
	}

	good := issue(ica, "good", revocationlab.CertOptions{})
	good.reason = "live OCSP and CRL say good"
	byCRL := issue(ica, "crl-revoked", revocationlab.CertOptions{NoOCSP: true})
	byCRL.soft, byCRL.hard, byCRL.reason = "revoked", "revoked", "revoked, CRL only"
	byOCSP := issue(ica, "ocsp-revoked", revocationlab.CertOptions{NoCRL: true})
	byOCSP.soft, byOCSP.hard, byOCSP.reason = "revoked", "revoked", "revoked, OCSP only"
	stapled := issue(ica, "staple-revoked", revocationlab.CertOptions{OCSPURLs: dead, CRLURLs: deadCRL})
	stapled.soft, stapled.hard, stapled.reason = "revoked", "revoked", "revoked per its staple, responders down"
	forged := issue(ica, "forged-staple", revocationlab.CertOptions{NoOCSP: true})
	forged.soft, forged.hard, forged.reason = "revoked", "revoked", "forged good staple, revoked per CRL"
	// Signed by a stranger under the CA's name while the certificate was
	// still good: a staple claiming good that must not be believed.
	staple(forged, revocationlab.OCSPForged)
	weak := issue(ica, "rsa1024", revocationlab.CertOptions{Key: revocationlab.RSA1024})
	weak.soft, weak.hard, weak.reason = "too weak", "too weak", "RSA 1024"
	down := issue(ica, "unanswerable", revocationlab.CertOptions{OCSPURLs: dead, CRLURLs: deadCRL})
	down.hard, down.reason = "could not be checked", "OCSP and CRL unreachable"
	hostile := issue(forger, "forged-ocsp-huge-crl", revocationlab.CertOptions{CRLURLs: []string{"http://" + revLabHugeCRL + "/huge.crl"}})
	hostile.hard, hostile.reason = "could not be checked", "forged OCSP answer, CRL over the size limit"
	garbage := issue(garbler, "garbage", revocationlab.CertOptions{})
	garbage.hard, garbage.reason = "could not be checked", "garbage OCSP answer and CRL"

	for _, o := range []*revOrigin{byCRL, byOCSP, stapled, forged} {
		o.issuer.Revoke(o.issued.Cert)
	}
	staple(stapled, revocationlab.OCSPNormal) // now says revoked
	return []*revOrigin{good, byCRL, byOCSP, stapled, forged, weak, down, hostile, garbage}, root
}

// serveRevOrigin serves o's certificate on o.addr:443 in ns.
func serveRevOrigin(t *testing.T, ns *lab.NS, o *revOrigin) {
	t.Helper()
	ln, err := ns.Listen("tcp", o.addr+":443")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           lab.OriginHandler("revocation lab"),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{o.cert}},
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // the appliance refusing a chain is expected
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
}

// serveHugeCRL streams a CRL body larger than the appliance accepts: a DER
// SEQUENCE header announcing it, then zeros, without Content-Length. It
// returns the count of requests.
func serveHugeCRL(t *testing.T, ns *lab.NS) *atomic.Int64 {
	t.Helper()
	ln, err := ns.Listen("tcp", revLabHugeCRL)
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int64
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/pkix-crl")
		n := hugeCRLBytes - 6
		_, _ = w.Write([]byte{0x30, 0x84, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := w.Write(chunk[:min(len(chunk), n-sent)]); err != nil {
				return // the appliance stopped reading at its limit
			}
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &requests
}

func writeRevocationConfig(t *testing.T, l *e2eLab, rootFile, mode string) {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir: %s/state
management:
  listen: 127.0.0.1:9780
log:
  access: %s/access.log
  level: debug
datapath:
  interface: lan0
  pin_dir: %s
upstream:
  extra_roots: [%s]
  revocation: %s
`, l.dir, l.dir, l.pinDir, rootFile, mode)
	if err := os.WriteFile(l.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// curlThrough fetches https://<o.name>/ with curl in the client namespace;
// the name resolves to o's own address, so the datapath steers it.
func curlThrough(t *testing.T, l *e2eLab, o *revOrigin) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out, err := l.Client.Exec(ctx, "curl", "-sS", "--max-time", "30",
		"--cacert", filepath.Join(l.dir, "appliance-ca.pem"),
		"--resolve", o.name+":443:"+o.addr,
		"-w", "\n%{http_code}", "https://"+o.name+"/")
	if err != nil {
		t.Errorf("curl %s: %v: %s", o.name, err, out)
		return 0, ""
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	code, _ := strconv.Atoi(s[i+1:])
	return code, s[:i]
}

var certcheckLine = regexp.MustCompile(`(?m)^portcullis_certcheck_total\{outcome="([a-z_]+)"\} ([0-9.e+]+)$`)

// certcheckMetric is portcullis_certcheck_total{outcome} in a scrape (-1
// when absent).
func certcheckMetric(scrape, outcome string) float64 {
	for _, m := range certcheckLine.FindAllStringSubmatch(scrape, -1) {
		if m[1] == outcome {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return -1
}

func grepLines(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
