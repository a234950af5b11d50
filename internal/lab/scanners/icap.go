package scanners

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The services of a c-icap started by StartICAP.
const (
	// ServiceVirusScan is c-icap's virus_scan service, asking its own clamd
	// (started with it, same test signatures) about every file.
	ServiceVirusScan = "virus_scan"
	// ServiceEcho answers every request with the message it was sent.
	ServiceEcho = "echo"
)

// StartICAP starts a private clamd and a c-icap in the foreground on a free
// loopback port, with the virus_scan service (using that clamd through
// c-icap's clamd_mod) and the echo service; waits until virus_scan answers
// OPTIONS (at most a minute); and returns the server's base URL,
// "icap://127.0.0.1:PORT", to which the service names are appended. Both
// are stopped when the test ends.
func StartICAP(t testing.TB) string {
	t.Helper()
	bin := binary(t, "c-icap", "c-icap")
	found, _ := filepath.Glob("/usr/lib/*/c_icap/virus_scan.so")
	if len(found) == 0 {
		msg := "scanners: c-icap's virus_scan module not found: install the Debian package libc-icap-mod-virus-scan (scripts/deps.sh does)"
		if os.Getenv("CI") != "" || os.Geteuid() == 0 {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	modules := filepath.Dir(found[0])
	clamd := StartClamd(t)
	// c-icap cannot be told to take port 0; a port found free can be taken
	// by someone else before c-icap binds it, so a lost race is retried.
	var last error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("scanners: %v", err)
		}
		url, exited, err := tryICAP(t, bin, modules, clamd, port)
		if err == nil {
			return url
		}
		if last = err; !exited {
			break
		}
	}
	t.Fatalf("scanners: %v", last)
	return ""
}

// tryICAP starts c-icap on port; exited tells a c-icap that gave up (as
// when the port was taken) from one that never answered.
func tryICAP(t testing.TB, bin, modules, clamd string, port int) (url string, exited bool, err error) {
	dir := workDir(t, "pcicap")
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return "", false, err
	}
	conf := filepath.Join(dir, "c-icap.conf")
	if err := os.WriteFile(conf, []byte(icapConf(dir, modules, clamd, port)), 0o600); err != nil {
		return "", false, err
	}
	d := start(t, dir, "c-icap", exec.Command(bin, "-N", "-D", "-f", conf))
	logs := []string{d.log, filepath.Join(dir, "server.log")}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("c-icap logs:\n%s", tail(logs...))
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	err = waitReady(d, func(ctx context.Context) error { return options(ctx, addr, ServiceVirusScan) })
	if err != nil {
		select {
		case <-d.exited:
			exited = true
		default:
		}
		return "", exited, fmt.Errorf("%v\n%s", err, tail(logs...))
	}
	return "icap://" + addr, false, nil
}

// icapConf keeps c-icap to dir and the loopback port: no system user
// switch, no files under /var. virus_scan hands every file type to clamd.
func icapConf(dir, modules, clamd string, port int) string {
	return fmt.Sprintf(`PidFile %[1]s/c-icap.pid
CommandsSocket %[1]s/c-icap.ctl
Port 127.0.0.1:%[4]d
Timeout 30
KeepAliveTimeout 30
StartServers 1
MaxServers 2
MinSpareThreads 2
MaxSpareThreads 8
ThreadsPerChild 8
TmpDir %[1]s/tmp
MaxMemObject 131072
DebugLevel 1
ModulesDir %[2]s
ServicesDir %[2]s
TemplateDir /usr/share/c_icap/templates/
TemplateDefaultLanguage en
LoadMagicFile /etc/c-icap/c-icap.magic
ServerLog %[1]s/server.log
AccessLog %[1]s/access.log
Service echo srv_echo.so
Module common clamd_mod.so
clamd_mod.ClamdSocket %[3]s
Service virus_scan virus_scan.so
virus_scan.DefaultEngine clamd
virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE GIF JPEG MSOFFICE
virus_scan.Allow204Responces on
virus_scan.PassOnError off
virus_scan.MaxObjectSize 5M
`, dir, modules, clamd, port)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// options sends OPTIONS for service and wants "ICAP/1.0 200".
func options(ctx context.Context, addr, service string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(2 * time.Second))
	}
	fmt.Fprintf(c, "OPTIONS icap://%s/%s ICAP/1.0\r\nHost: %s\r\nEncapsulated: null-body=0\r\n\r\n", addr, service, addr)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "ICAP/1.0 200") {
		return fmt.Errorf("OPTIONS %s answered %q", service, strings.TrimSpace(line))
	}
	return nil
}
