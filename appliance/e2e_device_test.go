package appliance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/internal/lab/browser"
	"github.com/portcullis-gw/portcullis/internal/lab/revocationlab"
)

const deviceCertPolicy = `access_policies:
  - id: need-device-cert
    filters:
      apps: [origin-lab]
      device_tags: {none_of: [valid_client_certificate]}
      # The test drives native clients (Go, curl): a policy without
      # client_apps would apply to browsers only.
      client_apps: [browser, mobile_desktop]
    action: block
    message: A valid device certificate is required for the lab origin.
  # A block that rests on the user: the certificate names the user
  # (user_from: san_email), which is only known after the handshake.
  - id: chat-for-the-valid-user
    filters:
      apps: [chat-lab]
      users: {none_of: [valid@corp.example]}
      client_apps: [browser, mobile_desktop]
    action: block
    message: The lab chat is for valid@corp.example only.
`

// labDevices is a device PKI on disk: a root and an issuing CA (configured
// as client_cas), their CRLs (crl_files; the issuing CA's lists the revoked
// leaf), a stranger CA, and one certificate per case as PEM files for curl
// and as PKCS #12 for Chromium.
type labDevices struct {
	dir      string
	issuerCN string
	cas      []string
	crls     []string
	issued   map[string]*revocationlab.Issued
}

func newLabDevices(t *testing.T) *labDevices {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	d := &labDevices{dir: t.TempDir(), issuerCN: "portcullis device CA " + hex.EncodeToString(b[:]), issued: map[string]*revocationlab.Issued{}}
	root, err := revocationlab.NewRoot(nil, "device root")
	if err != nil {
		t.Fatal(err)
	}
	issuing, err := root.NewIntermediate(d.issuerCN)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := revocationlab.NewRoot(nil, "stranger root")
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]struct {
		ca *revocationlab.CA
		o  revocationlab.CertOptions
	}{
		"valid":    {issuing, revocationlab.CertOptions{}},
		"revoked":  {issuing, revocationlab.CertOptions{}},
		"expired":  {issuing, revocationlab.CertOptions{NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}},
		"wrong-ca": {stranger, revocationlab.CertOptions{}},
		"no-eku":   {issuing, revocationlab.CertOptions{NoEKU: true}},
	} {
		is, err := o.ca.ClientCert(name+"@corp.example", o.o)
		if err != nil {
			t.Fatal(err)
		}
		d.issued[name] = is
		d.write(t, name+".pem", is.CertPEM)
		d.write(t, name+".key", is.KeyPEM)
	}
	issuing.Revoke(d.issued["revoked"].Cert)
	for i, ca := range []*revocationlab.CA{root, issuing} {
		crl, err := ca.CRL()
		if err != nil {
			t.Fatal(err)
		}
		d.cas = append(d.cas, d.write(t, fmt.Sprintf("ca-%d.pem", i), ca.PEM))
		d.crls = append(d.crls, d.write(t, fmt.Sprintf("ca-%d.crl", i), crl))
	}
	return d
}

func (d *labDevices) write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(d.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (d *labDevices) config(polDir string) string {
	return fmt.Sprintf("policy:\n  dir: %s\ndevices:\n  client_cas: [%s]\n  crl_files: [%s]\n  check_crl: true\n  user_from: san_email\n",
		polDir, strings.Join(d.cas, ", "), strings.Join(d.crls, ", "))
}

func (d *labDevices) pkcs12(t *testing.T, name string) []byte {
	t.Helper()
	is := d.issued[name]
	p12, err := pkcs12.Modern.Encode(is.Key, is.Cert, is.Chain[1:len(is.Chain)-1], "lab")
	if err != nil {
		t.Fatal(err)
	}
	return p12
}

// TestE2EDeviceCertificates runs the appliance with client CAs, their CRL
// files and an access policy that blocks devices without a valid
// certificate. curl in the client namespace presents valid, revoked,
// expired, wrong-CA and no-EKU certificates (and none) through the
// transparent datapath: only the valid one reaches the origin, every
// verdict is in /metrics, and the activity log carries the device tag and
// the user the certificate names. Then headless Chromium, with the
// certificate imported as PKCS #12 and auto-selected by policy, passes
// with the valid certificate and is blocked with the revoked one.
func TestE2EDeviceCertificates(t *testing.T) {
	devs := newLabDevices(t)
	polDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(polDir, "devices.yaml"), []byte(deviceCertPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newE2ELab(t, devs.config(polDir))
	l.start()
	l.applianceCA() // writes appliance-ca.pem
	caPEM, err := os.ReadFile(filepath.Join(l.dir, "appliance-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"valid", "revoked", "expired", "wrong-ca", "no-eku", "none"} {
		args := []string{"-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", filepath.Join(l.dir, "appliance-ca.pem")}
		if name != "none" {
			args = append(args, "--cert", filepath.Join(devs.dir, name+".pem"), "--key", filepath.Join(devs.dir, name+".key"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := l.Client.Exec(ctx, "curl", append(args, "https://origin.lab/?case="+name)...)
		cancel()
		want := "403"
		if name == "valid" {
			want = "200"
		}
		if err != nil || string(out) != want {
			t.Errorf("curl with %s certificate: %v: %q, want HTTP %s", name, err, out, want)
		}
	}
	metrics := l.get("http://127.0.0.1:9780/metrics")
	for _, outcome := range []string{"valid", "revoked", "expired", "untrusted", "wrong_usage", "none"} {
		if want := fmt.Sprintf("portcullis_device_certificate_total{outcome=%q} 1\n", outcome); !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// chat.lab: the certificate's user decides, after the handshake; a
	// client without one is refused per request (403), not at the handshake.
	l.Client.SetHosts(map[string]netip.Addr{"origin.lab": originGood, "chat.lab": originGood})
	for _, c := range []struct{ cert, want string }{{"valid", "200"}, {"none", "403"}} {
		args := []string{"-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", filepath.Join(l.dir, "appliance-ca.pem")}
		if c.cert != "none" {
			args = append(args, "--cert", filepath.Join(devs.dir, c.cert+".pem"), "--key", filepath.Join(devs.dir, c.cert+".key"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := l.Client.Exec(ctx, "curl", append(args, "https://chat.lab/?case=user-"+c.cert)...)
		cancel()
		if err != nil || string(out) != c.want {
			t.Errorf("curl chat.lab with %s certificate: %v: %q, want HTTP %s", c.cert, err, out, c.want)
		}
	}

	// Chromium: the certificate in its NSS store, picked without a prompt.
	for _, c := range []struct{ name, want string }{
		{"valid", "hello from lab origin"},
		{"revoked", "A valid device certificate is required for the lab origin."},
	} {
		t.Run("chromium-"+c.name, func(t *testing.T) {
			browser.AutoSelectCertificate(t, "https://origin.lab", devs.issuerCN)
			b := browser.Start(t, browser.Options{NS: l.Client, TrustPEM: [][]byte{caPEM}})
			b.ImportPKCS12(t, devs.pkcs12(t, c.name), "lab")
			ctx, _ := b.NewTab(t)
			ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			ch := &chromium{ctx: ctx}
			ch.run(t, "open origin.lab with the "+c.name+" certificate", chromedp.Navigate("https://origin.lab/?case=chromium-"+c.name), waitText(c.want))
		})
	}

	l.stop(syscall.SIGTERM)
	st, err := activity.Open(filepath.Join(l.dir, "state", "activity.db"), activity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	page, err := st.Search(activity.Query{DeviceTag: "valid_client_certificate"})
	if err != nil {
		t.Fatal(err)
	}
	ja4s := map[string]bool{}
	for _, ev := range page.Events {
		// A request the browser abandoned as the test closed it (its
		// favicon, on a slow machine) is an error event, with the same user.
		abandoned := ev.Action == "error" && ev.Reason == "client went away"
		if ev.Action != "allow" && !abandoned || ev.User != "valid@corp.example" || (ev.Host != "origin.lab" && ev.Host != "chat.lab") {
			t.Errorf("event with the device tag: %+v, want allowed, user from the certificate's e-mail SAN", ev)
		}
		ja4s[ev.JA4] = true
	}
	if len(ja4s) != 2 {
		t.Errorf("events with the device tag from %d clients (JA4 %v), want curl and Chromium: %+v", len(ja4s), ja4s, page.Events)
	}
	blocked, err := st.Search(activity.Query{Action: "block", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	reasons, revokedBy := map[string]bool{}, map[string]bool{}
	for _, ev := range blocked.Events {
		if len(ev.DeviceTags) != 0 {
			t.Errorf("blocked event with device tags: %+v", ev)
		}
		reasons[ev.Reason] = true
		if strings.HasSuffix(ev.Reason, "(client certificate: revoked)") {
			revokedBy[ev.JA4] = true
		}
	}
	// Chromium was blocked for presenting the revoked certificate, not for
	// presenting none.
	if len(revokedBy) != 2 {
		t.Errorf("the revoked certificate was seen from %d clients (JA4 %v), want curl and Chromium", len(revokedBy), revokedBy)
	}
	for _, want := range []string{"revoked", "expired or not yet valid", "untrusted issuer", "not for client authentication", "no certificate"} {
		if !reasons["policy need-device-cert (client certificate: "+want+")"] {
			t.Errorf("no blocked event for %q among %v", want, reasons)
		}
	}
}
