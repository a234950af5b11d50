package appliance

import (
	"bytes"
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
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

// Every command, and the root, answers --help, -h, -help and `help CMD` with
// its help on stdout and exit status 0.
func TestCLIHelpOnEveryCommand(t *testing.T) {
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			if !sub.Hidden && sub.Name() != "help" {
				walk(sub, append(slices.Clone(path), sub.Name()))
			}
		}
	}
	walk(NewCommand(Env{}), nil)
	if len(paths) < 15 {
		t.Fatalf("only %d commands found: %v", len(paths), paths)
	}
	for _, p := range paths {
		for _, args := range [][]string{append(slices.Clone(p), "--help"), append(slices.Clone(p), "-h"),
			append(slices.Clone(p), "-help"), append([]string{"help"}, p...)} {
			out, errOut, err := runCLI(t, args...)
			if err != nil || !strings.Contains(out, "Usage:") || errOut != "" {
				t.Errorf("%q: err %v, stdout %q, stderr %q", args, err, out, errOut)
			}
		}
	}
}

func TestCLISingleDashLongFlagsAreNormalised(t *testing.T) {
	root := NewCommand(Env{})
	for _, c := range []struct{ in, want []string }{
		{[]string{"run", "-config", "/x.yaml"}, []string{"run", "--config", "/x.yaml"}},
		{[]string{"run", "-config=/x.yaml"}, []string{"run", "--config=/x.yaml"}},
		{[]string{"ca", "cert", "-config", "-weird"}, []string{"ca", "cert", "--config", "-weird"}},
		// Values are never rewritten, nor anything after "--".
		{[]string{"activity", "search", "-config", "c", "--text", "-user", "-user", "bob", "-limit", "5"},
			[]string{"activity", "search", "--config", "c", "--text", "-user", "--user", "bob", "--limit", "5"}},
		{[]string{"policy", "check", "-config", "c", "--", "-config"}, []string{"policy", "check", "--config", "c", "--", "-config"}},
		// A persistent flag, on its command and below it.
		{[]string{"remote", "-session", "s.json", "status"}, []string{"remote", "--session", "s.json", "status"}},
		{[]string{"remote", "changes", "list", "-session", "s.json"}, []string{"remote", "changes", "list", "--session", "s.json"}},
		// Names the command does not define are left for cobra to refuse.
		{[]string{"run", "-frob"}, []string{"run", "-frob"}},
		{[]string{"run", "-help"}, []string{"run", "--help"}},
	} {
		if got := normalizeFlags(root, c.in); !slices.Equal(got, c.want) {
			t.Errorf("normalizeFlags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	_, errOut, err := runCLI(t, "run", "-frob")
	if ExitCode(err) != 2 || !strings.Contains(errOut, "frob") {
		t.Errorf("unknown flag: exit %d, stderr %q", ExitCode(err), errOut)
	}
}

// --config is accepted wherever a command reads the appliance configuration.
func TestCLIConfigFlagEverywhere(t *testing.T) {
	root := NewCommand(Env{})
	for _, p := range [][]string{{"run"}, {"status"}, {"doctor"}, {"policy", "check"}, {"activity", "search"},
		{"ca", "cert"}, {"datapath", "detach"}, {"config", "check"}} {
		c, _, err := root.Find(p)
		if err != nil || c.Flags().Lookup("config") == nil {
			t.Errorf("%q has no --config (%v)", p, err)
		}
	}
}

func TestCLICompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_portcullis", "zsh": "#compdef portcullis", "fish": "complete -c portcullis"} {
		out, _, err := runCLI(t, "completion", shell)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("completion %s: %v, output lacks %q", shell, err, want)
		}
	}
	if _, _, err := runCLI(t, "completion", "powershell"); ExitCode(err) != 2 {
		t.Errorf("completion powershell: exit %d, want 2", ExitCode(err))
	}
}

func TestCLIManPagesAreReproducible(t *testing.T) {
	gen := func() map[string][]byte {
		dir := t.TempDir()
		var out, errOut bytes.Buffer
		env := Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string {
			if k == "SOURCE_DATE_EPOCH" {
				return "1735689600" // 2025-01-01
			}
			return ""
		}}
		if err := Exec(context.Background(), []string{"man", dir}, env); err != nil {
			t.Fatalf("man: %v %s", err, errOut.String())
		}
		pages := map[string][]byte{}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			pages[e.Name()], _ = os.ReadFile(filepath.Join(dir, e.Name()))
		}
		return pages
	}
	a, b := gen(), gen()
	for _, want := range []string{"portcullis.1", "portcullis-run.1", "portcullis-status.1", "portcullis-doctor.1", "portcullis-policy-check.1"} {
		if len(a[want]) == 0 {
			t.Errorf("no %s among %d pages", want, len(a))
		}
	}
	if !strings.Contains(string(a["portcullis.1"]), "Jan 2025") || strings.Contains(string(a["portcullis.1"]), "Auto generated") {
		t.Errorf("portcullis.1 header:\n%.400s", a["portcullis.1"])
	}
	for name, page := range a {
		if !bytes.Equal(page, b[name]) {
			t.Errorf("%s differs between two runs", name)
		}
	}
}
