package appliance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// remotePolicies are the appliance's policies: console-admins decides
// connections to the console's name (console.lab), so a change to it is
// risky; block-wiki is an ordinary policy.
const remotePolicies = `apps:
  - id: console-app
    domains: [console.lab]
  - id: wiki
    domains: [wiki.example]
access_policies:
  - id: console-admins
    filters: {apps: [console-app]}
    action: allow
  - id: block-wiki
    filters: {apps: [wiki]}
    action: block
    message: The wiki is closed.
`

type remoteLab struct {
	t        *testing.T
	a        *Appliance
	cfgPath  string
	state    string
	polFile  string
	url      string
	caFile   string
	home     string
	observed map[remoteEndpoint]bool
	mu       sync.Mutex
}

// newRemoteLab runs the appliance (in this process, its console on a
// loopback port over TLS from its own CA) with remotePolicies.
func newRemoteLab(t *testing.T) *remoteLab {
	t.Helper()
	state, polDir := t.TempDir(), t.TempDir()
	polFile := filepath.Join(polDir, "base.yaml")
	if err := os.WriteFile(polFile, []byte(remotePolicies), 0o644); err != nil {
		t.Fatal(err)
	}
	consoleAddr := freeAddr(t)
	cfgPath := writeConfig(t, fmt.Sprintf(`state_dir: %s
management: {listen: %q}
transparent: {enabled: false}
policy: {dir: %s}
console: {listen: %q, names: [console.lab]}
`, state, freeAddr(t), polDir, consoleAddr))
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a := runAppliance(t, cfg)
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", consoleAddr, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("console never listened on %s: %v", consoleAddr, err)
		}
		waitABit()
	}
	l := &remoteLab{t: t, a: a, cfgPath: cfgPath, state: state, polFile: polFile, url: "https://" + consoleAddr,
		caFile: filepath.Join(state, "ca", "ca.crt"), home: t.TempDir(), observed: map[remoteEndpoint]bool{}}
	remoteObserve = func(ep remoteEndpoint) {
		l.mu.Lock()
		l.observed[ep] = true
		l.mu.Unlock()
	}
	t.Cleanup(func() { remoteObserve = nil })
	return l
}

// runAppliance runs the appliance of cfg in this process until the test
// ends.
func runAppliance(t *testing.T, cfg *Config) *Appliance {
	t.Helper()
	a, err := New(cfg, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("appliance: %v", err)
		}
	})
	return a
}

// browser is a browser-like client of the console (for what the CLI does
// not do: the first admin, TOTP enrolment, accounts).
func (l *remoteLab) browser() *consoleClient {
	l.t.Helper()
	pem, err := os.ReadFile(l.caFile)
	if err != nil {
		l.t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	return &consoleClient{t: l.t, base: l.url, http: &http.Client{Jar: jar, Transport: sameOriginRT{tr}, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// cli runs `portcullis ARGS` with stdin, HOME set to the lab's.
func (l *remoteLab) cli(stdin string, args ...string) (string, string, error) {
	l.t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string {
		if k == "HOME" {
			return l.home
		}
		return ""
	}}
	err := Exec(context.Background(), args, env)
	return out.String(), errOut.String(), err
}

// ok runs the CLI and fails the test on an error.
func (l *remoteLab) ok(stdin string, args ...string) string {
	l.t.Helper()
	out, errOut, err := l.cli(stdin, args...)
	if err != nil {
		l.t.Fatalf("portcullis %s: %v\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func (l *remoteLab) emit(evs ...activity.Event) {
	l.t.Helper()
	st := l.a.activity.store
	before := st.Stats().Written
	for _, e := range evs {
		if err := st.Emit(e); err != nil {
			l.t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.Stats().Written < before+uint64(len(evs)) {
		if time.Now().After(deadline) {
			l.t.Fatal("events not written")
		}
		waitABit()
	}
}

// enrolTOTP turns on two-factor login for the browser's account and
// returns the secret.
func (l *remoteLab) enrolTOTP(b *consoleClient) string {
	l.t.Helper()
	if code, _ := b.do("POST", "/account/totp", "application/x-www-form-urlencoded", strings.NewReader(url.Values{"csrf": {b.csrf}}.Encode())); code != http.StatusSeeOther {
		l.t.Fatalf("begin totp: %d", code)
	}
	_, page := b.do("GET", "/account", "", nil)
	m := regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(page)
	if m == nil {
		l.t.Fatalf("no TOTP secret on the account page:\n%s", page)
	}
	now, err := totp.GenerateCode(m[1], time.Now())
	if err != nil {
		l.t.Fatal(err)
	}
	if code, body := b.do("POST", "/account/totp/confirm", "application/x-www-form-urlencoded",
		strings.NewReader(url.Values{"csrf": {b.csrf}, "code": {now}}.Encode())); code != 200 || !strings.Contains(body, "Two-factor login is on.") {
		l.t.Fatalf("confirm totp: %d", code)
	}
	return m[1]
}

// nextTOTP is the next time step's code: this step's confirmed the
// enrolment, and a code is valid once (one step of skew is allowed).
func nextTOTP(t *testing.T, secret string) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func jsonLinesOf(t *testing.T, out string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON lines: %v\n%s", err, out)
		}
		rows = append(rows, m)
	}
	return rows
}

const (
	remoteAdminPW   = "remote-admin-password-1"
	remoteAuditorPW = "remote-auditor-password-1"
)

// TestRemoteCLIAgainstTheConsole drives `portcullis remote` against the
// appliance's console over TLS: login with password and TOTP code (the
// console URL and CA from the local configuration), policies with hits,
// activity search and export, a disable staged, shown, applied and kept
// as a revision, then undone; an auditor refused; a risky change confirmed
// and another left to revert while a further apply is refused (409); a
// conflict with a hand edit; the audit log; status; logout and a dead session said plainly. Every API
// operation the CLI knows is used, and each is in the served openapi.yaml.
func TestRemoteCLIAgainstTheConsole(t *testing.T) {
	l := newRemoteLab(t)

	// No session: a clear error before anything is sent.
	if _, _, err := l.cli("", "remote", "policies", "list"); err == nil || !strings.Contains(err.Error(), "not logged in") ||
		!strings.Contains(err.Error(), "portcullis remote login") {
		t.Fatalf("without a session: %v", err)
	}

	// The first admin (setup token), with two-factor login; an auditor.
	b := l.browser()
	b.setupAdmin(l.state, "admin", remoteAdminPW)
	secret := l.enrolTOTP(b)
	if code, m := b.api("POST", "/api/v1/users", map[string]any{"name": "audrey", "password": remoteAuditorPW, "role": "auditor"}); code != http.StatusCreated {
		t.Fatalf("create auditor: %d %v", code, m)
	}

	// Login: a wrong password is refused; the right one without the code
	// the account needs says so; with the code it logs in.
	if _, _, err := l.cli("wrong password\n", "remote", "login", "--config", l.cfgPath, "--user", "admin"); err == nil ||
		!strings.Contains(err.Error(), "login refused") {
		t.Fatalf("wrong password: %v", err)
	}
	if _, _, err := l.cli(remoteAdminPW+"\n", "remote", "login", "--config", l.cfgPath, "--user", "admin"); err == nil ||
		!strings.Contains(err.Error(), "no TOTP or recovery code on standard input") {
		t.Fatalf("no code: %v", err)
	}
	out := l.ok(remoteAdminPW+"\n"+nextTOTP(t, secret)+"\n", "remote", "login", "--config", l.cfgPath, "--user", "admin")
	sessFile := filepath.Join(l.home, ".config", "portcullis", "console-session.json")
	if !strings.Contains(out, "logged in to "+l.url+" as admin (admin)") || !strings.Contains(out, sessFile) {
		t.Fatalf("login said: %q", out)
	}
	fi, err := os.Stat(sessFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v, mode %v", err, fi.Mode())
	}
	if di, _ := os.Stat(filepath.Dir(sessFile)); di.Mode().Perm() != 0o700 {
		t.Errorf("session directory mode %v, want 0700", di.Mode().Perm())
	}
	if raw, _ := os.ReadFile(sessFile); bytes.Contains(raw, []byte(remoteAdminPW)) || !bytes.Contains(raw, []byte("BEGIN CERTIFICATE")) {
		t.Errorf("session file holds the password, or not the appliance CA:\n%s", raw)
	}

	// Activity: two blocks of the wiki, one allowed request elsewhere.
	t0 := time.Now().UTC().Add(-time.Minute)
	src := netip.MustParseAddr("198.18.0.7")
	l.emit(
		activity.Event{Time: t0, Mode: activity.ModeTransparent, User: "bob@corp.example", SourceIP: src, App: "wiki", Host: "wiki.example",
			Method: "GET", Path: "/start", Action: "block", Policies: []string{"block-wiki"}},
		activity.Event{Time: t0.Add(time.Second), Mode: activity.ModeTransparent, User: "carol@corp.example", SourceIP: src, App: "wiki",
			Host: "wiki.example", Method: "GET", Path: "/\x1b[31mred", Action: "block", Policies: []string{"block-wiki"}},
		activity.Event{Time: t0.Add(2 * time.Second), Mode: activity.ModeTransparent, User: "bob@corp.example", SourceIP: src, App: "console-app",
			Host: "console.lab", Method: "GET", Path: "/", Action: "allow", Policies: []string{"console-admins"}},
	)

	// Policies in order, with hits.
	out = l.ok("", "remote", "policies", "list")
	if !regexp.MustCompile(`(?m)^1 +access +console-admins +allow +yes +no +1 `).MatchString(out) ||
		!regexp.MustCompile(`(?m)^2 +access +block-wiki +block +yes +no +2 `).MatchString(out) {
		t.Fatalf("policies list:\n%s", out)
	}
	rows := jsonLinesOf(t, l.ok("", "remote", "policies", "list", "--output", "jsonl"))
	if len(rows) != 2 || rows[1]["id"] != "block-wiki" || rows[1]["hits_7d"] != 2.0 || rows[1]["can_monitor_only"] != true {
		t.Fatalf("policies as JSON lines: %v", rows)
	}

	// Activity search: filters as the console's, OR within one, --not.
	out = l.ok("", "remote", "activity", "search", "--app", "wiki")
	if strings.Count(out, "wiki.example") != 2 || strings.Contains(out, "console.lab") || strings.Contains(out, "\x1b") ||
		!strings.Contains(out, `\x1b[31mred`) {
		t.Fatalf("search --app wiki (control characters escaped):\n%q", out)
	}
	evs := jsonLinesOf(t, l.ok("", "remote", "activity", "search", "--user", "bob@corp.example", "--user", "carol@corp.example",
		"--not", "action=allow", "--output", "jsonl"))
	if len(evs) != 2 || evs[0]["path"] != "/\x1b[31mred" || evs[1]["path"] != "/start" {
		t.Fatalf("search, two users, not allowed: %v", evs)
	}
	out, errOut, err := l.cli("", "remote", "activity", "search", "--limit", "1", "--output", "jsonl")
	if err != nil || len(jsonLinesOf(t, out)) != 1 || !strings.Contains(errOut, "more: --after ") {
		t.Fatalf("paged search: %v\n%s%s", err, out, errOut)
	}
	after := strings.TrimSpace(strings.TrimPrefix(errOut, "more: --after "))
	if evs := jsonLinesOf(t, l.ok("", "remote", "activity", "search", "--limit", "5", "--after", after, "--output", "jsonl")); len(evs) != 2 {
		t.Fatalf("second page: %v", evs)
	}
	if _, _, err := l.cli("", "remote", "activity", "search", "--source", "not-an-ip"); err == nil || !strings.Contains(err.Error(), "not an IP address") {
		t.Fatalf("bad source: %v", err)
	}
	for _, args := range [][]string{{"--not", "colour=red"}, {"--text", "wiki", "--text", "red"}, {"--output", "yaml"}} {
		if _, _, err := l.cli("", append([]string{"remote", "activity", "search"}, args...)...); ExitCode(err) != 2 {
			t.Errorf("search %q: exit %d, want 2", args, ExitCode(err))
		}
	}
	if evs := jsonLinesOf(t, l.ok("", "remote", "activity", "search", "--text", "red", "--not", "user=bob@corp.example", "--output", "jsonl")); len(evs) != 1 ||
		evs[0]["user"] != "carol@corp.example" {
		t.Fatalf("search --text red, not bob: %v", evs)
	}

	// Export: CSV to a file (0600), JSON lines to stdout.
	csvFile := filepath.Join(t.TempDir(), "wiki.csv")
	_, errOut, err = l.cli("", "remote", "activity", "export", "--format", "csv", "--app", "wiki", "--file", csvFile)
	if err != nil || !strings.Contains(errOut, "bytes written to "+csvFile) {
		t.Fatalf("export csv: %v %s", err, errOut)
	}
	if fi, err := os.Stat(csvFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v %v", err, fi)
	}
	f, _ := os.Open(csvFile)
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 3 || recs[0][0] != "time" || recs[1][4] != "carol@corp.example" {
		t.Fatalf("exported CSV: %v %v", err, recs)
	}
	if evs := jsonLinesOf(t, l.ok("", "remote", "activity", "export", "--format", "jsonl")); len(evs) != 3 {
		t.Fatalf("exported JSON lines: %d events", len(evs))
	}

	// Stage a disable: shown with its diff, applied, kept as a revision.
	out = l.ok("", "remote", "policies", "disable", "block-wiki", "--note", "wiki reopens")
	if !strings.Contains(out, "staged change 1 (base.yaml): ") || !strings.Contains(out, "block-wiki") {
		t.Fatalf("disable: %q", out)
	}
	out = l.ok("", "remote", "changes", "list")
	if !regexp.MustCompile(`(?m)^1 +policy_enabled +admin +base.yaml +no +.*block-wiki`).MatchString(out) || !strings.Contains(out, "valid") {
		t.Fatalf("changes list:\n%s", out)
	}
	out = l.ok("", "remote", "changes", "show", "1")
	if !strings.Contains(out, "note: wiki reopens") || !strings.Contains(out, "+    disabled: true") {
		t.Fatalf("changes show:\n%s", out)
	}
	if _, _, err := l.cli("", "remote", "changes", "show", "9"); err == nil || !strings.Contains(err.Error(), "no pending change 9") {
		t.Fatalf("show of no change: %v", err)
	}

	// The auditor reads, and is refused every change.
	audSess := filepath.Join(t.TempDir(), "auditor.json")
	out = l.ok(remoteAuditorPW+"\n", "remote", "--session", audSess, "login", "--url", l.url+"/", "--ca", l.caFile, "--user", "audrey")
	if !strings.Contains(out, "as audrey (auditor)") {
		t.Fatalf("auditor login: %q", out)
	}
	if out := l.ok("", "remote", "--session", audSess, "changes", "list"); !strings.Contains(out, "block-wiki") {
		t.Fatalf("auditor's changes list:\n%s", out)
	}
	for _, args := range [][]string{{"policies", "enable", "console-admins"}, {"changes", "apply"}, {"changes", "discard", "1"},
		{"revisions", "rollback", "1"}} {
		_, _, err := l.cli("", append([]string{"remote", "--session", audSess}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "refused: audrey is an auditor, and auditors cannot change anything") {
			t.Errorf("auditor %v: %v", args, err)
		}
	}

	// Logging in again ends the session it replaces.
	oldAud, _ := os.ReadFile(audSess)
	l.ok(remoteAuditorPW+"\n", "remote", "--session", audSess, "login", "--url", l.url, "--ca", l.caFile, "--user", "audrey")
	oldFile := filepath.Join(t.TempDir(), "old.json")
	if err := os.WriteFile(oldFile, oldAud, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.cli("", "remote", "--session", oldFile, "changes", "list"); err == nil || !strings.Contains(err.Error(), "(no session, or it ended)") {
		t.Fatalf("the replaced session: %v", err)
	}
	l.ok("", "remote", "--session", audSess, "changes", "list")

	out = l.ok("", "remote", "changes", "apply", "--note", "wiki is back")
	if !strings.Contains(out, "applying change 1: ") || !regexp.MustCompile(`revision (\d+) \(base.yaml\)`).MatchString(out) {
		t.Fatalf("apply:\n%s", out)
	}
	rev := regexp.MustCompile(`revision (\d+) \(base.yaml\)`).FindStringSubmatch(out)[1]
	if b, _ := os.ReadFile(l.polFile); !strings.Contains(string(b), "disabled: true") {
		t.Fatalf("not applied to the file:\n%s", b)
	}
	if out := l.ok("", "remote", "policies", "list"); !regexp.MustCompile(`(?m)^2 +access +block-wiki +block +no `).MatchString(out) {
		t.Fatalf("policies after the disable:\n%s", out)
	}
	out = l.ok("", "remote", "revisions", "list")
	if !regexp.MustCompile(`(?m)^` + rev + ` +\S+ +admin +base.yaml +.*block-wiki`).MatchString(out) {
		t.Fatalf("revisions list:\n%s", out)
	}
	if out := l.ok("", "remote", "revisions", "list", "--diff", "--file", "base.yaml"); !strings.Contains(out, "+    disabled: true") {
		t.Fatalf("revisions with diff:\n%s", out)
	}
	if _, _, err := l.cli("", "remote", "changes", "apply"); err == nil || !strings.Contains(err.Error(), "no pending changes") {
		t.Fatalf("apply of nothing: %v", err)
	}

	// Roll back: undo the revision, the file is as it was.
	if out := l.ok("", "remote", "revisions", "undo", rev); !strings.Contains(out, "staged change") {
		t.Fatalf("undo: %q", out)
	}
	l.ok("", "remote", "changes", "apply")
	if b, _ := os.ReadFile(l.polFile); string(b) != remotePolicies {
		t.Fatalf("after the rollback the file is:\n%s", b)
	}
	if out := l.ok("", "remote", "policies", "list"); !regexp.MustCompile(`(?m)^2 +access +block-wiki +block +yes `).MatchString(out) {
		t.Fatalf("policies after the rollback:\n%s", out)
	}

	// A risky change (what decides connections to the console) needs its
	// confirmation: --confirm gives it.
	l.ok("", "remote", "policies", "monitor-only", "console-admins")
	if out := l.ok("", "remote", "changes", "list"); !strings.Contains(out, "risky: applying needs a confirmation") {
		t.Fatalf("risky change not flagged:\n%s", out)
	}
	out = l.ok("", "remote", "changes", "apply", "--confirm")
	if !strings.Contains(out, "could lock admins out") || !strings.Contains(out, "confirmed: the change is kept") {
		t.Fatalf("apply --confirm:\n%s", out)
	}
	if out := l.ok("", "remote", "status"); strings.Contains(out, "savepoint:") {
		t.Fatalf("a savepoint left after the confirmation:\n%s", out)
	}
	// Without --confirm (no terminal): it says how; meanwhile nothing
	// else is applied (409, said as a conflict); revert puts it back.
	l.ok("", "remote", "policies", "monitor-only", "console-admins", "--off")
	out = l.ok("", "remote", "changes", "apply")
	if !strings.Contains(out, "confirm with: portcullis remote changes confirm") {
		t.Fatalf("risky apply without --confirm:\n%s", out)
	}
	if out := l.ok("", "remote", "status"); !strings.Contains(out, "savepoint:  admin applied") {
		t.Fatalf("status without the savepoint:\n%s", out)
	}
	l.ok("", "remote", "policies", "disable", "block-wiki")
	if _, _, err := l.cli("", "remote", "changes", "apply"); err == nil || !strings.HasPrefix(err.Error(), "conflict: a risky change is waiting for confirmation") {
		t.Fatalf("apply during a savepoint: %v", err)
	}
	if out := l.ok("", "remote", "changes", "revert"); !strings.Contains(out, "reverted") {
		t.Fatalf("revert: %q", out)
	}
	if out := l.ok("", "remote", "policies", "list"); !regexp.MustCompile(`(?m)^1 +access +console-admins +monitor +yes +yes \(was allow\)`).MatchString(out) {
		t.Fatalf("after the revert console-admins is not monitor-only:\n%s", out)
	}
	if _, _, err := l.cli("", "remote", "changes", "confirm"); err == nil || !strings.Contains(err.Error(), "no change is waiting for confirmation") {
		t.Fatalf("confirm of nothing: %v", err)
	}
	// A hand edit of the file under a staged change: the tray shows the
	// conflict, the apply is refused with the console's words (409).
	hand, _ := os.ReadFile(l.polFile)
	if err := os.WriteFile(l.polFile, append(hand, "# edited by hand\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := l.ok("", "remote", "changes", "list"); !strings.Contains(out, "CONFLICT (file changed since): policy block-wiki: disabled") ||
		!strings.Contains(out, "does not apply as it is") {
		t.Fatalf("conflict not shown:\n%s", out)
	}
	if _, _, err := l.cli("", "remote", "changes", "apply"); err == nil || !strings.HasPrefix(err.Error(), "conflict: the file changed on disk since the change was staged") ||
		!strings.Contains(err.Error(), "(changes 5; discard them and stage again)") {
		t.Fatalf("apply of a conflicting change: %v", err)
	}
	if out := l.ok("", "remote", "changes", "discard", "--all"); !strings.Contains(out, "discarded change") {
		t.Fatalf("discard --all: %q", out)
	}
	if out := l.ok("", "remote", "changes", "list"); !strings.Contains(out, "no pending changes") {
		t.Fatalf("after discard --all:\n%s", out)
	}

	// The audit log has it all, the auditor's refusals included.
	out = l.ok("", "remote", "audit", "--limit", "500")
	for _, want := range []string{"change_staged", "changes_applied", "change_confirmed", "change_reverted", "export", "login"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit log lacks %s:\n%s", want, out)
		}
	}
	if es := jsonLinesOf(t, l.ok("", "remote", "audit", "--actor", "audrey", "--action", "forbidden", "--output", "jsonl")); len(es) != 4 {
		t.Errorf("auditor's refusals in the audit log: %v", es)
	}

	out = l.ok("", "remote", "status")
	for _, want := range []string{"console:    " + l.url + ", logged in as admin (admin)", "activity:   healthy", "last hour:  3 events, 2 blocked",
		"pending:    0 change(s)", "health:     OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// Every operation the CLI knows was used, and the served document
	// lists each.
	code, doc := b.do("GET", "/api/v1/openapi.yaml", "", nil)
	if code != 200 {
		t.Fatalf("openapi.yaml: %d", code)
	}
	checkDocumented(t, []byte(doc), remoteEndpoints)

	// Logout ends the session on the console: the same cookie is refused.
	saved, _ := os.ReadFile(sessFile)
	if out := l.ok("", "remote", "logout"); !strings.Contains(out, "logged out of "+l.url) {
		t.Fatalf("logout: %q", out)
	}
	if _, err := os.Stat(sessFile); !os.IsNotExist(err) {
		t.Fatalf("session file after logout: %v", err)
	}
	if _, _, err := l.cli("", "remote", "status"); err == nil || !strings.Contains(err.Error(), "not logged in to the console") {
		t.Fatalf("after logout: %v", err)
	}
	if err := os.WriteFile(sessFile, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.cli("", "remote", "policies", "list"); err == nil ||
		!strings.Contains(err.Error(), "not logged in to "+l.url+" (no session, or it ended): run `portcullis remote login`") {
		t.Fatalf("ended session: %v", err)
	}
	if err := os.Chmod(sessFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.cli("", "remote", "policies", "list"); err == nil || !strings.Contains(err.Error(), "open to group or others") {
		t.Fatalf("session file readable by others: %v", err)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ep := range remoteEndpoints {
		if !l.observed[ep] {
			t.Errorf("the test never used %s %s", ep.Method, ep.Path)
		}
	}
	for ep := range l.observed {
		if !slices.Contains(remoteEndpoints, ep) {
			t.Errorf("the CLI called %s %s, which remoteEndpoints does not list", ep.Method, ep.Path)
		}
	}
}

// A console whose certificate the trusted CA did not issue is refused with
// what to do; a --ca file without a certificate is refused, and of one
// that also holds a key only the certificates are kept; plain HTTP, URLs
// with a path and a login without --user off a terminal are refused before
// any connection.
func TestRemoteLoginChecksTheConsole(t *testing.T) {
	l := newRemoteLab(t)
	// Another appliance's CA: `ca cert` of a second install.
	otherPEM, _, err := l.cli("", "ca", "cert", "--config", writeConfig(t, "state_dir: "+t.TempDir()+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(other, []byte(otherPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = l.cli("some password\n", "remote", "login", "--url", l.url, "--ca", other, "--user", "admin")
	if err == nil || !strings.Contains(err.Error(), "the console's certificate is not trusted") || !strings.Contains(err.Error(), "--ca FILE") {
		t.Fatalf("untrusted console: %v", err)
	}
	// A CA file without a certificate; a certificate with its key: the key
	// is not kept.
	if _, _, err := l.cli("pw\n", "remote", "login", "--url", l.url, "--ca", l.cfgPath, "--user", "admin"); err == nil || !strings.Contains(err.Error(), "no PEM certificate in it") {
		t.Errorf("--ca of a file without a certificate: %v", err)
	}
	key, err := os.ReadFile(filepath.Join(l.state, "ca", "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	withKey := filepath.Join(t.TempDir(), "with-key.pem")
	if err := os.WriteFile(withKey, append(must(os.ReadFile(l.caFile)), key...), 0o600); err != nil {
		t.Fatal(err)
	}
	b := l.browser()
	b.setupAdmin(l.state, "admin", remoteAdminPW)
	sess := filepath.Join(t.TempDir(), "s.json")
	l.ok(remoteAdminPW+"\n", "remote", "--session", sess, "login", "--url", l.url, "--ca", withKey, "--user", "admin")
	if raw, _ := os.ReadFile(sess); !bytes.Contains(raw, []byte("BEGIN CERTIFICATE")) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Errorf("session file keeps a key, or no certificate:\n%s", raw)
	}
	for _, u := range []string{"http://" + strings.TrimPrefix(l.url, "https://"), l.url + "/api/v1"} {
		if _, _, err := l.cli("pw\n", "remote", "login", "--url", u, "--user", "admin"); err == nil || !strings.Contains(err.Error(), "console URL") {
			t.Errorf("login --url %s: %v", u, err)
		}
	}
	if _, errOut, err := l.cli("pw\n", "remote", "login", "--url", l.url); ExitCode(err) != 2 || !strings.Contains(errOut, "--user") {
		t.Errorf("login without --user and no terminal: exit %d %q", ExitCode(err), errOut)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Every operation the CLI calls is in the openapi.yaml shipped in the
// console package, with its method.
func TestRemoteEndpointsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("console", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	checkDocumented(t, doc, remoteEndpoints)
	// The check can fail: operations the document lacks are found.
	var missing []string
	checkDocumentedInto(func(f string, a ...any) { missing = append(missing, fmt.Sprintf(f, a...)) }, doc,
		[]remoteEndpoint{{http.MethodPatch, "/tray"}, {http.MethodGet, "/no-such"}})
	if len(missing) != 2 {
		t.Fatalf("undocumented operations: the check found %q", missing)
	}
}

func checkDocumented(t *testing.T, doc []byte, eps []remoteEndpoint) {
	t.Helper()
	checkDocumentedInto(t.Errorf, doc, eps)
}

func checkDocumentedInto(errorf func(string, ...any), doc []byte, eps []remoteEndpoint) {
	var spec struct {
		Servers []struct {
			URL string `yaml:"url"`
		} `yaml:"servers"`
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(doc, &spec); err != nil {
		errorf("openapi.yaml: %v", err)
		return
	}
	if len(spec.Servers) != 1 || spec.Servers[0].URL != "/api/v1" {
		errorf("openapi.yaml servers: %v, want /api/v1", spec.Servers)
	}
	for _, ep := range eps {
		ops, ok := spec.Paths[ep.Path]
		if !ok {
			errorf("openapi.yaml has no path %s", ep.Path)
			continue
		}
		if _, ok := ops[strings.ToLower(ep.Method)]; !ok {
			errorf("openapi.yaml has no %s for %s", ep.Method, ep.Path)
		}
	}
}
