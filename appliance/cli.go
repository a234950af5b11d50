package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/portcullis-gw/portcullis/agent"
	"github.com/portcullis-gw/portcullis/proxy"
)

// ErrUsage marks command-line mistakes (exit status 2); the command has
// already said what was wrong on stderr.
var ErrUsage = errors.New("usage")

// ExitCode maps an error from Main to a process exit status: 2 for a
// command-line mistake, 3 for status of a daemon that is not running (the
// LSB convention), 75 for a restart the console asked for (the systemd
// unit restarts on it), 1 for anything else.
func ExitCode(err error) int {
	switch {
	case errors.Is(err, errRestartRequested):
		return exitRestart
	case errors.Is(err, ErrUsage):
		return 2
	case errors.Is(err, errNotRunning):
		return 3
	}
	return 1
}

// Env is what a command may touch of the process around it, so that tests
// can give it their own.
type Env struct {
	// Stdin is what prompts read (os.Stdin when nil).
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
	// Version is what --version prints (none when empty).
	Version string
}

func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

// Main is the testable entry point of the portcullis command with the
// process environment.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return Exec(ctx, args, Env{Stdout: stdout, Stderr: stderr})
}

// Exec runs the command line args (without the program name).
func Exec(ctx context.Context, args []string, env Env) error {
	root := NewCommand(env)
	root.SetArgs(normalizeFlags(root, args))
	return root.ExecuteContext(ctx)
}

// NewCommand builds the whole command tree: help, completions and man pages
// are generated from these definitions.
func NewCommand(env Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "portcullis",
		Short: "Inline cloud-access security gateway",
		Long: `Portcullis is an inline cloud-access security gateway: a Linux appliance that
decides, per connection and per request, who may reach which SaaS or web app
and what they may do there, and logs every activity.

Long flags are written --name; the single-dash form -name is accepted too.`,
		Args:          cobra.ArbitraryArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				cmd.SetOut(env.Stderr)
				_ = cmd.Help()
				return ErrUsage
			}
			return unknownCommand(cmd, args[0])
		},
	}
	if env.Version != "" {
		root.Version = env.Version
	}
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		fmt.Fprintf(env.Stderr, "%v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return ErrUsage
	})
	root.AddCommand(
		runCommand(env),
		statusCommand(env),
		doctorCommand(env),
		caCommand(env),
		configCommand(env),
		datapathCommand(env),
		activityCommand(env),
		policyCommand(env),
		consoleCommand(env),
		remoteCommand(env),
		completionCommand(env),
		manCommand(env),
	)
	return root
}

func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, ", ") + "?"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s\nRun '%s --help' for usage.\n", msg, cmd.CommandPath())
	return ErrUsage
}

// group is a command that only holds subcommands: run bare or with an
// unknown subcommand, it prints its help to stderr and is a usage error.
func group(env Env, use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(cmd, args[0])
			}
			cmd.SetOut(env.Stderr)
			_ = cmd.Help()
			return ErrUsage
		},
	}
	c.AddCommand(subs...)
	return c
}

// configFlag adds --config to cmd.
func configFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "config", "", "configuration file (YAML) overlaid on the embedded default")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
}

// noArgs is cobra.NoArgs as a usage error (exit 2).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "unexpected arguments: %v\nRun '%s --help' for usage.\n", args, cmd.CommandPath())
		return ErrUsage
	}
	return nil
}

func runCommand(env Env) *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the appliance (default configuration: the embedded one)",
		Long: `Run the appliance in the foreground until SIGINT or SIGTERM; SIGHUP reloads
the policies. Under systemd (Type=notify) it reports readiness once its
listeners are up and the datapath is attached, and pings the watchdog.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			a, err := New(cfg, env.Stderr)
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	configFlag(c, &cfgPath)
	return c
}

func caCommand(env Env) *cobra.Command {
	var cfgPath string
	cert := &cobra.Command{
		Use:   "cert",
		Short: "Print the appliance CA certificate (PEM); the key never leaves the machine",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			ca, err := proxy.LoadOrCreateCA(filepath.Join(cfg.StateDir, "ca"))
			if err != nil {
				return err
			}
			_, err = env.Stdout.Write(ca.CertPEM())
			return err
		},
	}
	configFlag(cert, &cfgPath)
	return group(env, "ca", "The appliance certificate authority", cert, caImportCommand(env))
}

func configCommand(env Env) *cobra.Command {
	def := &cobra.Command{
		Use:   "default",
		Short: "Print the embedded default configuration (every key, commented)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := env.Stdout.Write(DefaultConfig())
			return err
		},
	}
	var cfgPath string
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate a configuration file (file:line:col errors)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			if _, err := LoadConfig(cfgPath); err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, "configuration is valid")
			return nil
		},
	}
	configFlag(check, &cfgPath)
	return group(env, "config", "Print or validate the configuration", def, check)
}

func datapathCommand(env Env) *cobra.Command {
	var cfgPath string
	detach := &cobra.Command{
		Use:   "detach",
		Short: "Remove the pinned kernel datapath, its routing and pins",
		Long: `Remove the pinned kernel datapath, its routing and pins. A stopped daemon
leaves the datapath attached by default (datapath.on_stop: keep) so that its
fail mode keeps deciding while it restarts; this removes it.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			return agent.Remove(agentConfig(cfg.Datapath))
		},
	}
	configFlag(detach, &cfgPath)
	return group(env, "datapath", "The kernel datapath", detach)
}

func completionCommand(env Env) *cobra.Command {
	return &cobra.Command{
		Use:       "completion bash|zsh|fish",
		Short:     "Print the shell completion script",
		Long:      "Print the completion script for bash, zsh or fish, generated from the command definitions.",
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				fmt.Fprintf(cmd.ErrOrStderr(), "name one shell: bash, zsh or fish\n")
				return ErrUsage
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(env.Stdout, true)
			case "zsh":
				return root.GenZshCompletion(env.Stdout)
			case "fish":
				return root.GenFishCompletion(env.Stdout, true)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "unknown shell %q: use bash, zsh or fish\n", args[0])
			return ErrUsage
		},
	}
}

func manCommand(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write the manual pages (section 1) into DIR",
		Long: `Write one manual page per command (portcullis.1, portcullis-run.1, ...) into
DIR, generated from the command definitions. Their date is SOURCE_DATE_EPOCH
when set, so that packages are reproducible.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				fmt.Fprintf(cmd.ErrOrStderr(), "name the output directory\n")
				return ErrUsage
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			date := time.Now()
			if s := env.getenv("SOURCE_DATE_EPOCH"); s != "" {
				sec, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
				}
				date = time.Unix(sec, 0).UTC()
			}
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			return doc.GenManTree(root, &doc.GenManHeader{Section: "1", Date: &date,
				Source: "Portcullis", Manual: "Portcullis Manual"}, args[0])
		},
	}
}

// normalizeFlags rewrites single-dash long flags (-config FILE, the Go flag
// package style existing scripts use) as --config FILE, so that cobra sees one
// style. It follows the command path as it goes, so it rewrites only names
// the command being run defines, and never touches a flag's value or anything
// after "--".
func normalizeFlags(root *cobra.Command, args []string) []string {
	out := make([]string, 0, len(args))
	cmd := root
	lookup := func(name string) *pflag.Flag {
		if name == "help" {
			return &pflag.Flag{Name: "help", Value: boolValue{}, NoOptDefVal: "true"}
		}
		if f := cmd.Flags().Lookup(name); f != nil {
			return f
		}
		if f := cmd.PersistentFlags().Lookup(name); f != nil {
			return f
		}
		return cmd.InheritedFlags().Lookup(name)
	}
	takesValue := func(f *pflag.Flag) bool { return f != nil && f.NoOptDefVal == "" }
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(out, args[i:]...)
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			out = append(out, a)
			if !hasValue && takesValue(lookup(name)) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		case len(a) > 2 && a[0] == '-':
			name, _, hasValue := strings.Cut(a[1:], "=")
			f := lookup(name)
			if f == nil {
				// Shorthands, possibly with a value attached (-n5), or a
				// mistake cobra will report.
				out = append(out, a)
				continue
			}
			out = append(out, "-"+a)
			if !hasValue && takesValue(f) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		case len(a) == 2 && a[0] == '-':
			out = append(out, a)
			if sh := cmd.Flags().ShorthandLookup(a[1:]); takesValue(sh) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		default:
			out = append(out, a)
			for _, sub := range cmd.Commands() {
				if sub.Name() == a || sub.HasAlias(a) {
					cmd = sub
					break
				}
			}
		}
	}
	return out
}

// boolValue stands for cobra's help flag, added only when a command runs.
type boolValue struct{}

func (boolValue) String() string   { return "false" }
func (boolValue) Set(string) error { return nil }
func (boolValue) Type() string     { return "bool" }
