package appliance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/portcullis-gw/portcullis/agent"
	"github.com/portcullis-gw/portcullis/proxy"
)

const usage = `usage: portcullis <command> [flags]

commands:
  run              run the appliance (-config FILE; default: the embedded config)
  ca cert          print the appliance CA certificate (PEM); the key never leaves the machine
  config default   print the embedded default configuration
  config check     validate a configuration file (-config FILE)
  datapath detach  remove the pinned kernel datapath, its routing and pins
  activity search [-config FILE] [--user U] [--app A] [--action X] [--policy P]
                  [--text T] [--since 1h] [--limit N] [--after TOKEN]
                   search the activity log (JSON lines, newest first)
  policy check DIR validate policy files (file:line:col errors with fix hints)
  policy explain --request FILE [--policies DIR]
                   evaluate a sample request and explain every matching policy
`

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

// ExitCode maps an error from Main to a process exit status.
func ExitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// Main is the testable entry point of the portcullis command.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	if cmd == "policy" {
		// Policy commands take positional arguments and their own flags.
		return policyMain(rest, stdout, stderr)
	}
	if len(rest) > 0 && (cmd == "ca" || cmd == "config" || cmd == "datapath" || cmd == "activity") {
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	fs := flag.NewFlagSet("portcullis "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (YAML) overlaid on the embedded default")
	if cmd == "activity search" {
		// -config comes first; the rest are the search's own flags.
		if len(rest) >= 2 && (rest[0] == "-config" || rest[0] == "--config") {
			*configPath, rest = rest[1], rest[2:]
		}
		cfg, err := LoadConfig(*configPath)
		if err != nil {
			return err
		}
		return activitySearch(cfg, rest, stdout, stderr)
	}
	if err := fs.Parse(rest); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %v\n%s", fs.Args(), usage)
		return errUsage
	}
	switch cmd {
	case "config default":
		_, err := stdout.Write(DefaultConfig())
		return err
	}
	cfg, err := LoadConfig(*configPath)
	if err != nil {
		return err
	}
	switch cmd {
	case "run":
		a, err := New(cfg, stderr)
		if err != nil {
			return err
		}
		return a.Run(ctx)
	case "config check":
		fmt.Fprintln(stdout, "configuration is valid")
		return nil
	case "ca cert":
		ca, err := proxy.LoadOrCreateCA(filepath.Join(cfg.StateDir, "ca"))
		if err != nil {
			return err
		}
		_, err = stdout.Write(ca.CertPEM())
		return err
	case "datapath detach":
		return agent.Remove(agentConfig(cfg.Datapath))
	}
	fmt.Fprintf(stderr, "unknown command %q\n%s", cmd, usage)
	return errUsage
}
