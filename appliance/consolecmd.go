package appliance

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/portcullis-gw/portcullis/appliance/console"
)

// consoleCommand is `portcullis console ...`.
func consoleCommand(env Env) *cobra.Command {
	var cfgPath string
	token := &cobra.Command{
		Use:   "setup-token",
		Short: "Print the one-time token that creates the console's first admin",
		Long: `Print the one-time setup token of the web console. It exists from the
appliance's first start until the first admin account is created with it; the
console has no default password.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			tok, err := console.SetupToken(cfg.StateDir)
			if errors.Is(err, console.ErrSetupDone) {
				fmt.Fprintln(env.Stderr, err)
				return err
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(env.Stdout, tok)
			return err
		},
	}
	configFlag(token, &cfgPath)
	return group(env, "console", "The local web console", token)
}
