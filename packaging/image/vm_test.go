package image

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// The lab around the VM: client ── lan [appliance] wan ── origin.
const (
	lanVM     = "198.18.41.1"
	lanClient = "198.18.41.2"
	wanVM     = "198.18.42.1"
	wanOrigin = "198.18.42.2"
	conffile  = "/etc/portcullis/portcullis.yaml"
)

// TestApplianceVM boots the appliance image under qemu with its LAN in a
// client namespace and its WAN in an origin namespace, and checks through the
// real VM what an admin relies on: first boot (role, SSH host keys, the
// console's setup token printed once, no secret from the image), interception
// with the appliance CA and its activity event, a bypass host showing the
// origin's own certificate, /metrics, an SNMPv3 authPriv walk of
// PORTCULLIS-MIB from the LAN, the fail mode while the service is stopped,
// and a reboot keeping the state (same CA, same host keys).
//
// Run by `make vm-test` (PORTCULLIS_VM_TEST=1, image from `make image`;
// PORTCULLIS_VM_IMAGE overrides the path, PORTCULLIS_VM_ACCEL=kvm|tcg the
// accelerator).
func TestApplianceVM(t *testing.T) {
	if os.Getenv("PORTCULLIS_VM_TEST") == "" {
		t.Skip("boots the appliance VM: set PORTCULLIS_VM_TEST=1 (make vm-test)")
	}
	lab.RequireRoot(t)
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen", "snmpwalk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/deps.sh installs it)", tool)
		}
	}
	image := os.Getenv("PORTCULLIS_VM_IMAGE")
	if image == "" {
		image = "../../bin/portcullis-appliance.qcow2"
	}
	image, err := filepath.Abs(image)
	if err == nil {
		_, err = os.Stat(image)
	}
	if err != nil {
		t.Fatalf("no image (make image builds it): %v", err)
	}
	total := time.Now()
	dir := t.TempDir()

	client, origin := lab.NewNS(t, "vc"), lab.NewNS(t, "vo")

	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vm-test", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	snmpUser, snmpAuth, snmpPriv := "vmtest", "a"+randHex(8), "p"+randHex(8)
	cfg := vmConfig{
		image: image, dir: dir, accel: accel(), memory: "1024",
		wan: origin, wanPeer: wanOrigin + "/24", lan: client, lanPeer: lanClient + "/24",
		creds: map[string]string{
			"ssh.authorized_keys.root": string(pub),
			"portcullis.appliance": strings.Join([]string{
				"WAN=static", "WAN_ADDRESS=" + wanVM + "/24", "WAN_GATEWAY=" + wanOrigin,
				"LAN_ADDRESS=" + lanVM + "/24", "LAN_DHCP_SERVER=yes",
			}, "\n") + "\n",
			"portcullis.snmpv3": snmpUser + " " + snmpAuth + " " + snmpPriv + "\n",
		},
	}
	v := startVM(t, cfg)
	t.Logf("qemu started (accel %s)", cfg.accel)
	v.routed = func() {
		client.IP("route", "add", "default", "via", lanVM)
		origin.IP("route", "add", "198.18.41.0/24", "via", wanVM)
	}
	v.routed()
	originCA := startOrigin(t, origin)

	mgmt := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return client.Dial(ctx, network, addr)
		},
	}}
	base := "http://" + lanVM + ":9780"

	// Boot to ready: the management endpoint answers on the LAN address.
	ready := waitHealthy(t, v, mgmt, base, 8*time.Minute)
	t.Logf("first boot: ready %v after qemu started", ready.Round(time.Second))

	// First boot printed the setup token and the host keys, and no root
	// password (a key came as a credential).
	m, err := v.waitConsole(regexp.MustCompile(`PORTCULLIS-SETUP-TOKEN (\S+)`), 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	token := m[1]
	hostKey, err := v.waitConsole(regexp.MustCompile(`PORTCULLIS-SSH-HOST-KEY 256 (SHA256:\S+) .*\(ED25519\)`), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v.console(), "PORTCULLIS-ROOT-PASSWORD") {
		t.Error("a root password was made although an SSH key was provisioned")
	}

	ssh := sshClient{ns: client, key: key, known: filepath.Join(dir, "known_hosts"), host: lanVM}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	mustSSH := func(stdin, command string) string {
		t.Helper()
		out, err := ssh.run(ctx, stdin, command)
		if err != nil {
			t.Fatalf("ssh %q: %v: %s", command, err, out)
		}
		return out
	}
	t.Cleanup(func() {
		if !t.Failed() || v.exited() {
			return
		}
		dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
		defer dcancel()
		out, _ := ssh.run(dctx, "", "systemd-analyze; systemd-analyze blame | head -15; journalctl -b --no-pager -u portcullis -u snmpd | tail -60")
		t.Logf("appliance journal:\n%s", out)
	})
	if got := mustSSH("", "portcullis console setup-token --config "+conffile); strings.TrimSpace(got) != token {
		t.Errorf("setup token on the console %q, from the CLI %q", token, got)
	}
	// The host key sshd presents is the one the console printed.
	if out, err := exec.Command("ssh-keygen", "-l", "-f", ssh.known).CombinedOutput(); err != nil || !strings.Contains(string(out), hostKey[1]) {
		t.Errorf("host key %s printed on the console, known_hosts has: %s %v", hostKey[1], out, err)
	}
	// Nothing per machine came from the image: machine-id made at this boot,
	// the role from the credential.
	status := mustSSH("", "cat /etc/machine-id; ip -br addr show lan; ip -br addr show wan; sysctl -n net.ipv4.ip_forward; "+
		"systemctl is-active portcullis snmpd ssh systemd-networkd; grep -E '^  (interface|client_prefixes):' "+conffile)
	for _, want := range []string{lanVM + "/24", wanVM + "/24", "interface: lan", "client_prefixes: [198.18.41.0/24]"} {
		if !strings.Contains(status, want) {
			t.Errorf("appliance state lacks %q:\n%s", want, status)
		}
	}
	if strings.Contains(status, "inactive") || strings.Contains(status, "failed") {
		t.Errorf("a service is not running:\n%s", status)
	}

	// The admin's part: trust the lab origin's CA, bypass one host.
	mustSSH(string(originCA.PEM), "cat >/etc/portcullis/lab-origin-ca.pem && "+
		"/usr/lib/portcullis-appliance/setconf upstream extra_roots '[/etc/portcullis/lab-origin-ca.pem]' && "+
		"/usr/lib/portcullis-appliance/setconf access bypass_hosts '[bypass.test]' && "+
		"portcullis config check --config "+conffile+" && systemctl restart portcullis")

	applianceCA := fetchCA(t, mgmt, base)
	caSum := sha256.Sum256(applianceCA.Raw)

	// Intercepted: the leaf is the appliance's, the body the origin's.
	body, leaf, err := get(client, "intercept.test", applianceCA)
	if err != nil {
		t.Fatalf("intercepted request: %v", err)
	}
	if !strings.Contains(body, "hello from vm-origin") || leaf.Issuer.String() != applianceCA.Subject.String() {
		t.Errorf("intercept: issuer %q, body %q", leaf.Issuer, body)
	}
	// Bypassed: the origin's own certificate reaches the client.
	body, leaf, err = get(client, "bypass.test", originCA.Cert)
	if err != nil {
		t.Fatalf("bypassed request: %v", err)
	}
	if !strings.Contains(body, "hello from vm-origin") || leaf.Issuer.String() != originCA.Cert.Subject.String() {
		t.Errorf("bypass: issuer %q, body %q", leaf.Issuer, body)
	}
	// Logged: the activity search finds the intercepted request.
	if out := retrySSH(t, ssh, ctx, "portcullis activity search --config "+conffile+" --text intercept.test --since 1h", "intercept.test", 20*time.Second); out == "" {
		t.Error("the intercepted request is not in the activity log")
	}
	// And in the access log file (not the journal), 0640 in a 0750
	// directory of the service user's.
	if out := retrySSH(t, ssh, ctx, "stat -c '%a %U %n' /var/log/portcullis /var/log/portcullis/access.log && grep -c '\"host\":\"intercept.test\"' /var/log/portcullis/access.log", "750 portcullis /var/log/portcullis\n640 portcullis /var/log/portcullis/access.log\n", 20*time.Second); out == "" {
		t.Error("the intercepted request is not in /var/log/portcullis/access.log, or its modes are not 0750/0640")
	}
	if out, _ := ssh.run(ctx, "", "journalctl -b --no-pager -u portcullis -o cat | grep -c '\"msg\":\"request\"'"); strings.TrimSpace(out) != "0" {
		t.Errorf("access-log lines in the journal: %q", out)
	}

	// /metrics from the LAN, the datapath steering by route (the default
	// for the default fail-closed configuration: rules and sk_lookup).
	metrics := httpGet(t, mgmt, base+"/metrics")
	if !strings.Contains(metrics, `portcullis_datapath_attach_mode{mode="sk_lookup"} 1`) {
		t.Errorf("/metrics: not steering by route (sk_lookup):\n%s", grepLines(metrics, "portcullis_datapath"))
	}

	// SNMPv3 authPriv from the LAN: snmpd's own tree and PORTCULLIS-MIB
	// through the AgentX subagent.
	if walk, err := snmpWalk(client, snmpUser, snmpAuth, snmpPriv); err != nil {
		out, _ := ssh.run(ctx, "", "ls -la /var/agentx /run/agentx; journalctl -b --no-pager -u snmpd -u portcullis | grep -iE 'snmp|agentx' | tail -30")
		t.Errorf("%v\nappliance:\n%s", err, out)
	} else {
		t.Logf("SNMPv3 walk of enterprises.32473: %d lines", strings.Count(walk, "\n"))
	}
	if out, err := client.Exec(ctx, "snmpwalk", "-v2c", "-c", "public", "-t", "2", "-r", "0", lanVM, "1.3.6.1.2.1.1"); err == nil {
		t.Errorf("SNMPv2c answered: %s", out)
	}

	// Fail mode: the service stopped, the datapath stays and steered
	// connections are refused; a start takes over again.
	mustSSH("", "systemctl stop portcullis")
	if pins := mustSSH("", "ls /sys/fs/bpf/portcullis/datapath"); strings.TrimSpace(pins) == "" {
		t.Error("no datapath pinned while the service is stopped")
	}
	if _, _, err := get(client, "intercept.test", applianceCA); err == nil {
		t.Error("steered connection succeeded while the service was stopped")
	} else {
		t.Logf("while stopped: %v", err)
	}
	mustSSH("", "systemctl start portcullis")
	if _, _, err := get(client, "intercept.test", applianceCA); err != nil {
		t.Fatalf("after start: %v", err)
	}

	// Reboot: same CA, same host keys (checked by ssh), the service back,
	// the first-boot report not printed again.
	if out, err := ssh.run(ctx, "", "systemctl reboot"); err != nil {
		t.Logf("reboot: %v %s", err, out)
	}
	rebooted := time.Now()
	waitDown(t, mgmt, base, 2*time.Minute)
	waitHealthy(t, v, mgmt, base, 6*time.Minute)
	t.Logf("reboot: ready %v after systemctl reboot", time.Since(rebooted).Round(time.Second))
	if again := fetchCA(t, mgmt, base); sha256.Sum256(again.Raw) != caSum {
		t.Errorf("CA changed across the reboot: %s", hex.EncodeToString(caSum[:]))
	}
	if _, _, err := get(client, "intercept.test", applianceCA); err != nil {
		t.Errorf("intercept after reboot: %v", err)
	}
	if n := strings.Count(v.console(), "PORTCULLIS-SETUP-TOKEN"); n != 1 {
		t.Errorf("setup token printed %d times", n)
	}
	if out := mustSSH("", "systemctl is-active portcullis"); strings.TrimSpace(out) != "active" {
		t.Errorf("after reboot: portcullis %s", out)
	}

	_, _ = ssh.run(ctx, "", "systemctl poweroff")
	if !v.waitExit(2 * time.Minute) {
		t.Error("the VM did not power off within 2 minutes")
	}
	t.Logf("vm test: %v in all", time.Since(total).Round(time.Second))
}

// startOrigin serves the lab origin over TLS on the WAN side, for both lab
// names, with a leaf from a fresh test CA.
func startOrigin(t *testing.T, origin *lab.NS) *lab.TestCA {
	t.Helper()
	ca, err := lab.NewTestCA("vm-test origin CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf(lab.LeafOptions{Names: []string{"intercept.test", "bypass.test", wanOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := origin.Listen("tcp", wanOrigin+":443")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: lab.OriginHandler("vm-origin"), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{leaf}})) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ca
}

// get fetches https://name/ from the client namespace through the appliance,
// trusting only root; it returns the body and the leaf the client saw.
func get(client *lab.NS, name string, root *x509.Certificate) (string, *x509.Certificate, error) {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	var leaf *x509.Certificate
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return client.Dial(ctx, network, wanOrigin+":443")
		},
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: name, VerifyConnection: func(cs tls.ConnectionState) error {
			leaf = cs.PeerCertificates[0]
			return nil
		}},
		DisableKeepAlives: true,
	}
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	resp, err := c.Get("https://" + name + "/")
	if err != nil {
		return "", leaf, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), leaf, err
}

func httpGet(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

func fetchCA(t *testing.T, c *http.Client, base string) *x509.Certificate {
	t.Helper()
	b := []byte(httpGet(t, c, base+"/ca.crt"))
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	cert, err := x509.ParseCertificate(b)
	if err != nil || !cert.IsCA {
		t.Fatalf("/ca.crt: %v (CA %v)", err, cert != nil && cert.IsCA)
	}
	return cert
}

// waitHealthy polls /healthz on the LAN address; it returns the time since
// qemu started.
func waitHealthy(t *testing.T, v *vm, c *http.Client, base string, d time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(d)
	quick := &http.Client{Transport: c.Transport, Timeout: 3 * time.Second}
	from := len(v.console())
	for {
		resp, err := quick.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(v.started)
			}
		}
		// A panicked guest never answers: say so now rather than at the
		// deadline. One panic before init under TCG is the emulator's
		// (bootPanic) and gets one power cycle; any other fails the test.
		if out := v.console(); len(out) > from {
			if p := bootPanic(out[from:]); p != "" && v.cfg.accel == "tcg" && v.powerCycles == 0 {
				t.Logf("guest kernel panicked before init under TCG (%s): power-cycling once", p)
				v.powerCycle()
				from = len(v.console())
				deadline = time.Now().Add(d)
				continue
			}
			if p := kernelPanic(out[from:]); p != "" {
				t.Fatalf("guest kernel panicked while waiting for the appliance: %s", p)
			}
		}
		if v.exited() {
			t.Fatalf("qemu exited while waiting for the appliance: %v", v.exitErr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("appliance not healthy within %v: %v", d, err)
		}
		time.Sleep(time.Second)
	}
}

// waitDown waits for the management endpoint to stop answering (a reboot
// has begun).
func waitDown(t *testing.T, c *http.Client, base string, d time.Duration) {
	t.Helper()
	quick := &http.Client{Transport: c.Transport, Timeout: 2 * time.Second}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := quick.Get(base + "/healthz")
		if err != nil {
			return
		}
		resp.Body.Close()
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the appliance still answered %v after systemctl reboot", d)
}

func retrySSH(t *testing.T, s sshClient, ctx context.Context, command, want string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, err := s.run(ctx, "", command)
		if err == nil && strings.Contains(out, want) {
			return out
		}
		if time.Now().After(deadline) {
			t.Logf("ssh %q: %v: %s", command, err, out)
			return ""
		}
		time.Sleep(2 * time.Second)
	}
}

// snmpWalk walks enterprises.32473 with SNMPv3 authPriv, retrying while the
// subagent registers with snmpd.
func snmpWalk(client *lab.NS, user, auth, priv string) (string, error) {
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := client.Exec(ctx, "snmpwalk", "-v3", "-l", "authPriv", "-u", user, "-a", "SHA-256", "-A", auth,
			"-x", "AES", "-X", priv, "-t", "5", "-r", "1", "-On", lanVM, ".1.3.6.1.4.1.32473")
		cancel()
		last = fmt.Sprintf("%v: %s", err, out)
		if err == nil && strings.Contains(string(out), ".1.3.6.1.4.1.32473.") {
			return string(out), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("SNMPv3 walk of PORTCULLIS-MIB: %s", last)
		}
		time.Sleep(3 * time.Second)
	}
}

func grepLines(s, sub string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
