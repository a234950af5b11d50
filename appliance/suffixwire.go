package appliance

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy"
	"github.com/portcullis-gw/portcullis/proxy/identity"
)

// catalogOnly is the engine used to recognise apps when no policy directory
// is configured: the built-in catalog and no policies.
var catalogOnly = sync.OnceValues(func() (*policy.Engine, error) {
	return policy.Compile(&policy.PolicySet{})
})

// onboarded reports whether host belongs to an app of the catalog in force.
func (p *policyEnforcer) onboarded(host string) bool {
	e := p.engine.Load()
	if e == nil {
		var err error
		if e, err = catalogOnly(); err != nil {
			return false
		}
	}
	return e.App(host) != nil
}

// suffixConfig builds the suffix proxy's configuration. It returns nil when
// suffix.domain is empty.
func suffixConfig(ctx context.Context, cfg *Config, p *policyEnforcer, roots *x509.CertPool) (*proxy.SuffixConfig, error) {
	sc := cfg.Suffix
	if sc.Domain == "" {
		return nil, nil
	}
	mapper, err := proxy.NewSuffixMapper(sc.Domain, p.onboarded)
	if err != nil {
		return nil, fmt.Errorf("suffix.domain: %w", err)
	}
	out := &proxy.SuffixConfig{Mapper: mapper, SuffixDiscovered: sc.SuffixDiscovered}
	if sc.Certificate != "" {
		c, err := tls.LoadX509KeyPair(sc.Certificate, sc.Key)
		if err != nil {
			return nil, fmt.Errorf("suffix.certificate: %w", err)
		}
		out.Certificate = &c
	}
	if len(sc.AllowPrivate) > 0 {
		set, err := policy.NewDomainSet(sc.AllowPrivate)
		if err != nil {
			return nil, fmt.Errorf("suffix.allow_private: %w", err)
		}
		out.AllowPrivate = set.Match
	}
	secrets, err := sessionSecrets(cfg)
	if err != nil {
		return nil, err
	}
	if out.Sessions, err = identity.NewSessions(secrets, sc.SessionTTL); err != nil {
		return nil, fmt.Errorf("suffix.session_secrets: %w", err)
	}
	if len(sc.SAML) > 0 {
		observers := map[string]*identity.SAMLObserver{}
		var sets []*policy.DomainSet
		var obs []*identity.SAMLObserver
		for i, t := range sc.SAML {
			certs, err := readCertificates(t.IdPCertificate)
			if err != nil {
				return nil, fmt.Errorf("suffix.saml[%d].idp_certificate: %w", i, err)
			}
			set, err := policy.NewDomainSet(t.Apps)
			if err != nil {
				return nil, fmt.Errorf("suffix.saml[%d].apps: %w", i, err)
			}
			o := identity.NewSAMLObserver(certs, time.Now)
			o.Claims = cfg.Identity.claimMap()
			sets, obs = append(sets, set), append(obs, o)
		}
		var mu sync.Mutex
		out.SAML = func(host string) *identity.SAMLObserver {
			mu.Lock()
			defer mu.Unlock()
			if o, ok := observers[host]; ok {
				return o
			}
			var o *identity.SAMLObserver
			for i, set := range sets {
				if set.Match(host) {
					o = obs[i]
					break
				}
			}
			if len(observers) < 4096 {
				observers[host] = o
			}
			return o
		}
	}
	if o := sc.OIDC; o.Issuer != "" {
		secret := ""
		if o.ClientSecretFile != "" {
			b, err := os.ReadFile(o.ClientSecretFile)
			if err != nil {
				return nil, fmt.Errorf("suffix.oidc.client_secret_file: %w", err)
			}
			secret = strings.TrimSpace(string(b))
		}
		required, err := policy.NewDomainSet(o.RequireFor)
		if err != nil {
			return nil, fmt.Errorf("suffix.oidc.require_for: %w", err)
		}
		login, err := identity.NewOIDCLogin(ctx, identity.OIDCConfig{
			Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: secret, Scopes: o.Scopes,
			HTTPClient: originClient(cfg, roots), Claims: cfg.Identity.claimMap(),
			AllowedReturn: func(u *url.URL) bool {
				if u.Scheme != "https" || u.User != nil {
					return false
				}
				_, err := mapper.ToOrigin(u.Host)
				return err == nil
			},
		}, out.Sessions)
		if err != nil {
			return nil, fmt.Errorf("suffix.oidc: %w", err)
		}
		out.Login, out.LoginRequired = login, required.Match
	}
	return out, nil
}

// sessionSecrets reads the configured secrets, or the per-install one
// (created on first start, mode 0600).
func sessionSecrets(cfg *Config) ([][]byte, error) {
	var out [][]byte
	for i, f := range cfg.Suffix.SessionSecrets {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("suffix.session_secrets[%d]: %w", i, err)
		}
		out = append(out, []byte(strings.TrimSpace(string(b))))
	}
	if len(out) > 0 {
		return out, nil
	}
	path := filepath.Join(cfg.StateDir, "session.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, 32)
		_, _ = rand.Read(b)
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("session key: %w", err)
		}
		_, werr := f.Write(b)
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("session key: %w", err)
		}
		return [][]byte{b}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	return [][]byte{b}, nil
}

func readCertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate in the file")
	}
	return out, nil
}

// originClient is how the appliance itself talks to an IdP: verified TLS
// (system roots plus upstream.extra_roots), configured hosts before DNS.
func originClient(cfg *Config, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: cfg.Upstream.DialTimeout}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, port, err := net.SplitHostPort(addr)
				if err == nil {
					if hs, ok := cfg.Hosts[host]; ok && len(hs) > 0 {
						// Entries are an address, or address:port for a
						// service on another port.
						if ap, err := netip.ParseAddrPort(hs[0]); err == nil {
							addr = ap.String()
						} else {
							addr = net.JoinHostPort(hs[0], port)
						}
					}
				}
				return d.DialContext(ctx, network, addr)
			},
		},
	}
}
