package appliance

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// notifyListener is a service manager's notification socket.
func notifyListener(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, path
}

func readNotify(t *testing.T, conn *net.UnixConn, within time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(within))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification within %v: %v", within, err)
	}
	return string(buf[:n])
}

// The real start path, with the process environment systemd gives a
// Type=notify service with WatchdogSec: READY=1 only once the listeners
// answer, WATCHDOG=1 at half the timeout, STOPPING=1 on shutdown.
func TestNotifyReadyWatchdogStopping(t *testing.T) {
	conn, path := notifyListener(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "200000") // 0.2 s: pings every 0.1 s
	t.Setenv("WATCHDOG_PID", "")
	cfg, err := LoadConfig(writeConfig(t, "state_dir: "+t.TempDir()+`
management: {listen: "127.0.0.1:0"}
transparent: {enabled: false}
log: {access: stderr}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	msg := readNotify(t, conn, 10*time.Second)
	if !strings.HasPrefix(msg, "READY=1\n") || !strings.Contains(msg, "STATUS=") {
		t.Fatalf("first notification %q, want READY=1 with a STATUS", msg)
	}
	// Ready means serving: the management endpoint answers now.
	resp, err := http.Get("http://" + a.ManagementAddr() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("READY=1 sent before /healthz answered: %v", err)
	}
	resp.Body.Close()
	start := time.Now()
	for range 2 {
		if msg := readNotify(t, conn, 2*time.Second); msg != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", msg)
		}
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("two watchdog pings took %v, want about 0.2 s (half of WATCHDOG_USEC each)", d)
	}
	cancel()
	for {
		msg := readNotify(t, conn, 10*time.Second)
		if msg == "WATCHDOG=1" {
			continue // sent before the stop
		}
		if msg != "STOPPING=1" {
			t.Fatalf("got %q on shutdown, want STOPPING=1", msg)
		}
		break
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	done <- nil
}

func TestNotifyWithoutSocketOrForAnotherProcess(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if sent, err := sdNotify(getenv, "READY=1"); sent || err != nil {
		t.Errorf("no NOTIFY_SOCKET: sent %v, err %v", sent, err)
	}
	env["WATCHDOG_USEC"] = "3000000"
	if d := watchdogInterval(getenv); d != 1500*time.Millisecond {
		t.Errorf("watchdog interval %v, want 1.5s", d)
	}
	env["WATCHDOG_PID"] = "1"
	if d := watchdogInterval(getenv); d != 0 {
		t.Errorf("watchdog meant for PID 1 pinged from here every %v", d)
	}
	env["NOTIFY_SOCKET"] = filepath.Join(t.TempDir(), "absent.sock")
	if sent, err := sdNotify(getenv, "READY=1"); !sent || err == nil {
		t.Errorf("absent socket: sent %v, err %v; want an error", sent, err)
	}
	// The abstract namespace ("@name") works too.
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "@portcullis-notify-test", Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	env["NOTIFY_SOCKET"] = "@portcullis-notify-test"
	if _, err := sdNotify(getenv, "STOPPING=1"); err != nil {
		t.Fatal(err)
	}
	if msg := readNotify(t, conn, time.Second); msg != "STOPPING=1" {
		t.Errorf("abstract socket got %q", msg)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
