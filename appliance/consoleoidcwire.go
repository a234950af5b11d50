package appliance

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/portcullis-gw/portcullis/appliance/console"
)

// ConsoleOIDCConfig is console.oidc: admins log in to the console through
// an OpenID provider; its groups decide admin or auditor.
type ConsoleOIDCConfig struct {
	Issuer           string `mapstructure:"issuer"`
	ClientID         string `mapstructure:"client_id"`
	ClientSecretFile string `mapstructure:"client_secret_file"`
	// RedirectURL is the callback registered at the provider; empty: built
	// from the host the browser used (https://<host>/login/oidc/callback).
	RedirectURL   string   `mapstructure:"redirect_url"`
	GroupsClaim   string   `mapstructure:"groups_claim"`
	AdminGroups   []string `mapstructure:"admin_groups"`
	AuditorGroups []string `mapstructure:"auditor_groups"`
}

func (o ConsoleOIDCConfig) validate() error {
	if o.Issuer == "" && o.ClientID == "" && len(o.AdminGroups) == 0 && len(o.AuditorGroups) == 0 {
		return nil
	}
	var errs []error
	if !strings.HasPrefix(o.Issuer, "https://") {
		errs = append(errs, errors.New("console.oidc.issuer: an https URL"))
	}
	if o.ClientID == "" {
		errs = append(errs, errors.New("console.oidc.client_id: required"))
	}
	if len(o.AdminGroups) == 0 && len(o.AuditorGroups) == 0 {
		errs = append(errs, errors.New("console.oidc: admin_groups or auditor_groups: without them nobody can log in"))
	}
	return errors.Join(errs...)
}

// consoleOIDC builds the console's single sign-on from console.oidc; nil
// when it is not configured. The provider is verified against the
// upstream roots, like every origin.
func (a *Appliance) consoleOIDC() (*console.OIDCOptions, error) {
	o := a.cfg.Console.OIDC
	if o.Issuer == "" {
		return nil, nil
	}
	secret := ""
	if o.ClientSecretFile != "" {
		b, err := os.ReadFile(o.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("console.oidc.client_secret_file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	roots, err := upstreamRoots(&a.cfg.Upstream)
	if err != nil {
		return nil, err
	}
	return &console.OIDCOptions{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: secret, RedirectURL: o.RedirectURL,
		GroupsClaim: o.GroupsClaim, AdminGroups: o.AdminGroups, AuditorGroups: o.AuditorGroups,
		HTTPClient: originClient(a.cfg, roots)}, nil
}
