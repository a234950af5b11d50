package console

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// setupTokenFile holds the one-time token that creates the first admin.
const setupTokenFile = "setup-token"

// Dir is where the console keeps its state under the appliance's state_dir.
func Dir(stateDir string) string { return filepath.Join(stateDir, "console") }

// SetupToken returns the one-time setup token of the console whose state
// is under stateDir, for `portcullis console setup-token`. It is empty, with
// ErrSetupDone, once the first account exists.
func SetupToken(stateDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(Dir(stateDir), setupTokenFile))
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(Dir(stateDir), "accounts.json")); err == nil {
			return "", ErrSetupDone
		}
		return "", fmt.Errorf("%w: start the appliance once to create it", ErrNoSetupToken)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

var (
	// ErrSetupDone: an account exists, so there is no setup token any more.
	ErrSetupDone = errors.New("console set up already: log in with an account")
	// ErrNoSetupToken: the console has not started yet.
	ErrNoSetupToken = errors.New("no console setup token yet")
)

// ensureSetupToken creates the token file when no account exists and
// returns the token; "" when accounts exist.
func ensureSetupToken(dir string, haveAccounts bool) (string, error) {
	p := filepath.Join(dir, setupTokenFile)
	if haveAccounts {
		_ = os.Remove(p)
		return "", nil
	}
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	tok := randomToken(20)
	if err := writeFileAtomic(p, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("console setup token: %w", err)
	}
	return tok, nil
}
