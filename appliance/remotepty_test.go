package appliance

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the master (what a terminal emulator
// holds) and the slave (the program's terminal).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		m.Close()
	})
	return m, s
}

// terminalSession runs one command on the slave of a pseudo-terminal;
// the test types on the master.
type terminalSession struct {
	t             *testing.T
	master, slave *os.File
	stdout        syncBuffer
	stderr        syncBuffer
	screen        syncBuffer // what the terminal shows (the line discipline's echo)
	done          chan error
}

func (l *remoteLab) onTerminal(args ...string) *terminalSession {
	l.t.Helper()
	m, s := openPTY(l.t)
	ts := &terminalSession{t: l.t, master: m, slave: s, done: make(chan error, 1)}
	go func() { _, _ = io.Copy(&ts.screen, m) }()
	env := Env{Stdin: s, Stdout: &ts.stdout, Stderr: &ts.stderr, Getenv: func(k string) string {
		if k == "HOME" {
			return l.home
		}
		return ""
	}}
	go func() { ts.done <- Exec(context.Background(), args, env) }()
	return ts
}

// typeAt waits until the command's stderr shows prompt and the terminal's
// echo is as wanted, then types line.
func (ts *terminalSession) typeAt(prompt string, echo bool, line string) {
	ts.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		tio, err := unix.IoctlGetTermios(int(ts.slave.Fd()), unix.TCGETS)
		if err != nil {
			ts.t.Fatal(err)
		}
		if strings.Contains(ts.stderr.String(), prompt) && (tio.Lflag&unix.ECHO != 0) == echo {
			break
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("no prompt %q with echo %v; stderr %q", prompt, echo, ts.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := ts.master.WriteString(line + "\n"); err != nil {
		ts.t.Fatal(err)
	}
}

func (ts *terminalSession) wait() error {
	ts.t.Helper()
	select {
	case err := <-ts.done:
		return err
	case <-time.After(60 * time.Second):
		ts.t.Fatalf("command did not end; stdout %q stderr %q", ts.stdout.String(), ts.stderr.String())
		return nil
	}
}

// On a terminal, login asks the user name (echoed), the password and the
// TOTP code without echo, and leaves the terminal as it was; a risky
// change's apply asks whether to keep it: yes confirms, anything else
// reverts.
func TestRemoteOnATerminal(t *testing.T) {
	l := newRemoteLab(t)
	b := l.browser()
	b.setupAdmin(l.state, "admin", remoteAdminPW)
	secret := l.enrolTOTP(b)

	code := nextTOTP(t, secret)
	ts := l.onTerminal("remote", "login", "--config", l.cfgPath)
	ts.typeAt("User: ", true, "admin")
	ts.typeAt("Password for admin: ", false, remoteAdminPW)
	ts.typeAt("Code (TOTP or recovery) for admin: ", false, code)
	if err := ts.wait(); err != nil {
		t.Fatalf("login on a terminal: %v\n%s", err, ts.stderr.String())
	}
	if !strings.Contains(ts.stdout.String(), "logged in to "+l.url+" as admin (admin)") {
		t.Fatalf("login said %q", ts.stdout.String())
	}
	time.Sleep(100 * time.Millisecond) // the echo copier
	screen := ts.screen.String()
	if !strings.Contains(screen, "admin") || strings.Contains(screen, remoteAdminPW) || strings.Contains(screen, code) {
		t.Fatalf("the terminal showed %q: the user name echoed, never the password or code", screen)
	}
	if tio, err := unix.IoctlGetTermios(int(ts.slave.Fd()), unix.TCGETS); err != nil || tio.Lflag&unix.ECHO == 0 {
		t.Fatalf("echo not restored: %v", err)
	}

	// Monitor-only on, kept; then off, reverted: console-admins stays
	// monitor-only (its action monitor) both times.
	for _, c := range []struct{ answer, want, file string }{
		{"y", "confirmed: the change is kept", "action: monitor"},
		{"n", "reverted: the files are as before", "action: monitor"},
	} {
		on := c.answer == "y"
		args := []string{"remote", "policies", "monitor-only", "console-admins"}
		if !on {
			args = append(args, "--off")
		}
		l.ok("", args...)
		ts := l.onTerminal("remote", "changes", "apply")
		ts.typeAt("Keep them?", true, c.answer)
		if err := ts.wait(); err != nil || !strings.Contains(ts.stdout.String(), c.want) {
			t.Fatalf("answer %s: %v\n%s", c.answer, err, ts.stdout.String())
		}
		got, _ := os.ReadFile(l.polFile)
		if !strings.Contains(string(got), c.file) {
			t.Fatalf("answer %s: the file is\n%s", c.answer, got)
		}
		if code, m := b.api("GET", "/api/v1/tray", nil); code != http.StatusOK || m["savepoint"] != nil {
			t.Fatalf("answer %s: tray %d %v", c.answer, code, m)
		}
	}
}
