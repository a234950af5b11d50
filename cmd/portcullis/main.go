// Command portcullis runs the Portcullis gateway appliance and its admin
// subcommands. All behaviour lives in package appliance; main only exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/portcullis-gw/portcullis/appliance"
)

// version is set by the package build (-ldflags -X main.version=...).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], appliance.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Version: version})
	stop()
	if err != nil {
		os.Exit(appliance.ExitCode(err))
	}
}

// run is the testable program: it runs the command line and reports its
// error on stderr, unless the command already explained a usage mistake.
func run(ctx context.Context, args []string, env appliance.Env) error {
	err := appliance.Exec(ctx, args, env)
	if err != nil && !errors.Is(err, appliance.ErrUsage) {
		fmt.Fprintln(stderrOf(env), "portcullis:", err)
	}
	return err
}

func stderrOf(env appliance.Env) io.Writer {
	if env.Stderr == nil {
		return io.Discard
	}
	return env.Stderr
}
