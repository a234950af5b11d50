package appliance

import (
	"bytes"
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Main(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestCACertPrintsOnlyTheCertificate(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, "state_dir: "+dir+"\n")
	out, _, err := runCLI(t, "ca", "cert", "-config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	blk, rest := pem.Decode([]byte(out))
	if blk == nil || blk.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("ca cert printed more than one certificate:\n%s", out)
	}
	if strings.Contains(out, "PRIVATE") {
		t.Fatal("ca cert printed key material")
	}
	// The CA was generated on first use with private modes, and is stable.
	if st, err := os.Stat(filepath.Join(dir, "ca", "ca.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v mode %v", err, st.Mode().Perm())
	}
	again, _, _ := runCLI(t, "ca", "cert", "-config", cfg)
	if again != out {
		t.Fatal("the CA changed between two runs")
	}
	other, _, _ := runCLI(t, "ca", "cert", "-config", writeConfig(t, "state_dir: "+t.TempDir()+"\n"))
	if other == out {
		t.Fatal("two installs share a CA")
	}
}

func TestCLIUsageAndConfigCommands(t *testing.T) {
	if _, _, err := runCLI(t); ExitCode(err) != 2 {
		t.Errorf("no arguments: exit %d, want 2", ExitCode(err))
	}
	if _, _, err := runCLI(t, "frobnicate"); ExitCode(err) != 2 {
		t.Errorf("unknown command: exit %d, want 2", ExitCode(err))
	}
	out, _, err := runCLI(t, "config", "default")
	if err != nil || !strings.Contains(out, "datapath:") {
		t.Fatalf("config default: %v %q", err, out)
	}
	if out, _, err := runCLI(t, "config", "check", "-config", writeConfig(t, "datapath:\n  fail_open: true\n")); err != nil || !strings.Contains(out, "valid") {
		t.Fatalf("config check of a good file: %v %q", err, out)
	}
	_, _, err = runCLI(t, "config", "check", "-config", writeConfig(t, "datapath:\n  fail_opne: true\n"))
	if err == nil || ExitCode(err) != 1 || !strings.Contains(err.Error(), ":2:3: unknown key \"datapath.fail_opne\"") {
		t.Fatalf("config check of a bad file: %v", err)
	}
}
