package scanners

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartClamd starts a private clamd in the foreground that loads only the
// test signature database, waits until it answers PING (at most a minute),
// and returns its Unix socket path. The process is stopped when the test
// ends. Its StreamMaxLength is ClamdStreamMaxLength.
func StartClamd(t testing.TB) string {
	t.Helper()
	bin := binary(t, "clamd", "clamav-daemon")
	dir := workDir(t, "pcclamd")
	db := filepath.Join(dir, "db")
	for _, d := range []string{db, filepath.Join(dir, "tmp")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatalf("scanners: %v", err)
		}
	}
	if err := copyDatabase(filepath.Join(testdata(t), "clamav"), db); err != nil {
		t.Fatalf("scanners: test signature database: %v", err)
	}
	sock := filepath.Join(dir, "clamd.sock")
	log := filepath.Join(dir, "clamd.log")
	conf := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(conf, []byte(clamdConf(dir, sock, db, log)), 0o600); err != nil {
		t.Fatalf("scanners: %v", err)
	}
	d := start(t, dir, "clamd", exec.Command(bin, "--foreground", "--config-file="+conf))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("clamd logs:\n%s", tail(d.log, log))
		}
	})
	if err := waitReady(d, func(ctx context.Context) error { return ping(ctx, sock) }); err != nil {
		t.Fatalf("scanners: %v\n%s", err, tail(d.log, log))
	}
	return sock
}

// clamdConf is a configuration that touches nothing outside dir: no
// official databases, no bytecode, no TCP socket, no system user switch.
func clamdConf(dir, sock, db, log string) string {
	return fmt.Sprintf(`Foreground yes
LocalSocket %s
LocalSocketMode 600
DatabaseDirectory %s
TemporaryDirectory %s
LogFile %s
LogTime yes
PidFile %s
StreamMaxLength %d
MaxThreads 8
Bytecode no
SelfCheck 3600
`, sock, db, filepath.Join(dir, "tmp"), log, filepath.Join(dir, "clamd.pid"), ClamdStreamMaxLength)
}

// copyDatabase copies the signature files (not the README) into db.
func copyDatabase(src, db string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	n := 0
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".ndb", ".hdb", ".hsb", ".ldb":
		default:
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(db, e.Name()), data, 0o600); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no signature files in %s", src)
	}
	return nil
}

// ping asks clamd for PONG.
func ping(ctx context.Context, sock string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(2 * time.Second))
	}
	if _, err := c.Write([]byte("zPING\x00")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	n, _ := c.Read(buf)
	if !bytes.Equal(buf[:n], []byte("PONG\x00")) {
		return fmt.Errorf("PING answered %q", buf[:n])
	}
	return nil
}
