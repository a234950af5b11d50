package appliance

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-gw/portcullis/proxy"
)

// caImportCommand is `portcullis ca import`: an enterprise CA in place of
// the generated one.
func caImportCommand(env Env) *cobra.Command {
	var cfgPath, certPath, keyPath string
	var replace bool
	c := &cobra.Command{
		Use:   "import --cert FILE --key FILE",
		Short: "Install an existing enterprise CA (certificate and key) instead of the generated one",
		Long: `Install an existing enterprise CA as the appliance CA, so that the leaves it
mints chain to a CA the organisation's devices already trust. The pair is
checked first: a CA certificate (basicConstraints CA:TRUE, keyCertSign), the
key matching it, RSA of at least upstream.min_rsa_bits or ECDSA of at least
upstream.min_ec_bits, valid now; one expiring within 30 days is imported with
a warning. The certificate file holds the CA certificate; for an intermediate
CA (issued by an enterprise root) it also holds the certificates above it, in
any order, the root optional: each must have issued the one below it and be a
CA held to the same checks, and a test leaf must verify through the chain.
Handshakes then serve the leaf, the CA and its issuers (not the root), so
clients trusting only the enterprise root verify. The key is PEM (PKCS #8,
SEC 1 or PKCS #1), unencrypted.

It is written to <state_dir>/ca like the generated CA (directory 0700, key
0600, owned by the owner of state_dir), both files swapped in at once. An
installed CA is kept unless --replace is given, which deletes its key. The key
is never printed. A running daemon takes the imported CA on its next reload
(systemctl reload portcullis, or SIGHUP): it loads and checks it again, and
only if it is sound do the leaves minted from then on chain to it (cached
leaves of the old CA are dropped); otherwise it logs why and keeps the CA it
has.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if certPath == "" || keyPath == "" {
				fmt.Fprintf(env.Stderr, "--cert and --key are both required\nRun '%s --help' for usage.\n", cmd.CommandPath())
				return ErrUsage
			}
			cfg, err := LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			dir := filepath.Join(cfg.StateDir, "ca")
			res, err := proxy.ImportCAFiles(dir, certPath, keyPath, proxy.CAImportOptions{
				MinRSABits: cfg.Upstream.MinRSABits,
				MinECBits:  cfg.Upstream.MinECBits,
				Replace:    replace,
				Owner:      stateDirOwner(cfg.StateDir),
			})
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(env.Stderr, "warning:", w)
			}
			c := res.CA.Certificate()
			sum := sha256.Sum256(c.Raw)
			fmt.Fprintf(env.Stdout, "imported CA %q (%s, valid until %s, SHA-256 %s) into %s\n",
				c.Subject.CommonName, describeKey(c), c.NotAfter.UTC().Format(time.DateOnly), colonHex(sum[:]), dir)
			if n := len(res.CA.Chain()); n > 0 {
				fmt.Fprintf(env.Stdout, "with %d issuer certificate(s) above it, up to %q\n", n, res.CA.Chain()[n-1].Subject.CommonName)
			}
			if res.Replaced != "" {
				fmt.Fprintf(env.Stdout, "replaced the CA %s; its key is deleted\n", res.Replaced)
			}
			fmt.Fprintln(env.Stdout, "reload the appliance to use it (systemctl reload portcullis, or SIGHUP); until then the running daemon keeps its current CA")
			return nil
		},
	}
	configFlag(c, &cfgPath)
	c.Flags().StringVar(&certPath, "cert", "", "PEM file with the CA certificate (and, for an intermediate CA, its issuers)")
	c.Flags().StringVar(&keyPath, "key", "", "PEM file with the CA private key (unencrypted)")
	c.Flags().BoolVar(&replace, "replace", false, "replace an installed CA, deleting its key")
	_ = c.MarkFlagFilename("cert", "pem", "crt")
	_ = c.MarkFlagFilename("key", "pem", "key")
	return c
}

// stateDirOwner is who must own the imported CA so the daemon can read it:
// the owner of state_dir (the service user), when this runs as root and
// that is someone else. Otherwise the files are the caller's.
func stateDirOwner(stateDir string) *proxy.FileOwner {
	if os.Geteuid() != 0 {
		return nil
	}
	st, err := os.Stat(stateDir)
	if err != nil {
		return nil
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || sys.Uid == 0 {
		return nil
	}
	return &proxy.FileOwner{UID: int(sys.Uid), GID: int(sys.Gid)}
}

func describeKey(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	return c.PublicKeyAlgorithm.String()
}

func colonHex(b []byte) string {
	var s strings.Builder
	for i, x := range b {
		if i > 0 {
			s.WriteByte(':')
		}
		fmt.Fprintf(&s, "%02X", x)
	}
	return s.String()
}
