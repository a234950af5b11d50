package proxy

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Errors of importing an enterprise CA that callers match with errors.Is.
var (
	// ErrCAExists means a CA is already installed and replacing it was not
	// asked for: clients trust it, so it is never overwritten silently.
	ErrCAExists = errors.New("a CA is already installed")
	// ErrCANotImportable means the certificate and key given are not a CA
	// the appliance may mint leaves from; the error says which check failed.
	ErrCANotImportable = errors.New("CA cannot be imported")
)

// Defaults of CAImportOptions: the key sizes are upstream.min_rsa_bits and
// min_ec_bits' defaults, so the appliance's own chain is held to what it
// demands of origins.
const (
	DefaultCAMinRSABits   = 2048
	DefaultCAMinECBits    = 256
	DefaultCAExpiryNotice = 30 * 24 * time.Hour
)

// CAImportOptions shape ImportCA. The zero value uses the defaults above and
// refuses to replace an installed CA.
type CAImportOptions struct {
	MinRSABits, MinECBits int
	// ExpiryNotice: a CA expiring sooner than this is imported with a warning.
	ExpiryNotice time.Duration
	// Replace discards an installed CA (its key is deleted).
	Replace bool
	// Owner, when set, owns the written directory and files: root
	// installing for the service user that runs the daemon.
	Owner *FileOwner
	// Now is the time validity is checked at (time.Now when zero).
	Now time.Time
}

// FileOwner is a numeric owner and group.
type FileOwner struct{ UID, GID int }

// CAImport is what ImportCA did.
type CAImport struct {
	CA *CA
	// Replaced is the subject of the CA that was discarded, if any.
	Replaced string
	// Warnings are accepted problems an admin should still hear about.
	Warnings []string
}

// ImportCAFiles reads an enterprise CA's certificate and key (PEM) and
// installs them with ImportCA. A key file group or others can read is
// imported with a warning: the installed copy is 0600, but the original may
// have leaked.
func ImportCAFiles(dir, certPath, keyPath string, opt CAImportOptions) (*CAImport, error) {
	certPEM, err := readBounded(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readBounded(keyPath)
	if err != nil {
		return nil, err
	}
	var warnings []string
	if st, err := os.Stat(keyPath); err == nil && st.Mode().Perm()&0o077 != 0 {
		warnings = append(warnings, fmt.Sprintf("%s has mode %04o: group or others can read the CA key; the installed copy is 0600, but check the original did not leak and remove it", keyPath, st.Mode().Perm()))
	}
	res, err := ImportCA(dir, certPEM, keyPEM, opt)
	if err != nil {
		return nil, err
	}
	res.Warnings = append(warnings, res.Warnings...)
	return res, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("CA import: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxImportFile+1))
	if err != nil {
		return nil, fmt.Errorf("CA import: %s: %w", path, err)
	}
	if len(b) > maxImportFile {
		return nil, fmt.Errorf("%w: %s is larger than %d KiB", ErrCANotImportable, path, maxImportFile>>10)
	}
	return b, nil
}

// maxImportFile bounds what is read of a certificate or key file.
const maxImportFile = 1 << 20

// ImportCA checks certPEM and keyPEM as the appliance's CA and installs them
// in dir (the appliance's state_dir/ca) in place of the generated one: dir
// 0700, key 0600, both written and swapped in atomically, so a crash leaves
// either the old CA or the new one, never a mix. A running daemon takes
// it on its next reload (SIGHUP), which loads and checks it again before
// swapping it in.
func ImportCA(dir string, certPEM, keyPEM []byte, opt CAImportOptions) (*CAImport, error) {
	ca, warnings, err := CheckImportCA(certPEM, keyPEM, opt)
	if err != nil {
		return nil, err
	}
	res := &CAImport{CA: ca, Warnings: warnings}
	keyPath, certPath := filepath.Join(dir, caKeyFile), filepath.Join(dir, caCertFile)
	keyExists, err := exists(keyPath)
	if err != nil {
		return nil, err
	}
	certExists, err := exists(certPath)
	if err != nil {
		return nil, err
	}
	if keyExists || certExists {
		res.Replaced = describeInstalledCA(certPath)
		if !opt.Replace {
			return nil, fmt.Errorf("%w in %s (%s): clients trust it; replacing it deletes its key (use --replace to do so anyway)", ErrCAExists, dir, res.Replaced)
		}
	}
	if err := installCA(dir, ca, opt); err != nil {
		return nil, err
	}
	// Load what was written the way the daemon will.
	if res.CA, err = loadCA(keyPath, certPath); err != nil {
		return nil, fmt.Errorf("CA import: the installed CA does not load: %w", err)
	}
	return res, nil
}

func describeInstalledCA(certPath string) string {
	b, err := os.ReadFile(certPath)
	if err != nil {
		return "certificate unreadable"
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "certificate unreadable"
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "certificate unreadable"
	}
	return fmt.Sprintf("%q, expires %s", c.Subject.CommonName, c.NotAfter.Format(time.DateOnly))
}

// CheckImportCA checks that certPEM and keyPEM are a CA the appliance can
// mint browser-trusted leaves from and returns it, with warnings for what
// is allowed but worth knowing. Nothing is written.
//
// certPEM holds the CA certificate the key belongs to and, for an
// intermediate CA, the certificates above it (in any order, the root
// optional): every one must be a CA in the chain from the key's
// certificate up, valid now, with a key as strong as the options demand,
// and a test leaf must verify through the whole chain.
func CheckImportCA(certPEM, keyPEM []byte, opt CAImportOptions) (*CA, []string, error) {
	opt = opt.withDefaults()
	refuse := func(format string, args ...any) (*CA, []string, error) {
		return nil, nil, fmt.Errorf("%w: "+format, append([]any{ErrCANotImportable}, args...)...)
	}
	certs, err := certificatesOf(certPEM)
	if err != nil {
		return refuse("certificate file: %v", err)
	}
	key, err := importKey(keyPEM)
	if err != nil {
		return refuse("key file: %v", err)
	}
	cert, err := keyCertificate(certs, key)
	if err != nil {
		return refuse("%v", err)
	}
	chain, err := chainAbove(cert, certs)
	if err != nil {
		return refuse("certificate file: %v", err)
	}
	ca := newCA(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), key, chain)
	warnings, err := checkCA(ca, opt)
	if err != nil {
		return refuse("%v", err)
	}
	return ca, warnings, nil
}

// CheckCA holds a loaded CA (LoadCA) to the checks of an import: what a
// reload runs before it swaps the CA in, so a CA placed in state_dir by
// other means than `portcullis ca import` is held to the same rules. The
// error wraps ErrCANotImportable.
func CheckCA(ca *CA, opt CAImportOptions) ([]string, error) {
	w, err := checkCA(ca, opt.withDefaults())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCANotImportable, err)
	}
	return w, nil
}

func checkCA(ca *CA, opt CAImportOptions) ([]string, error) {
	cert := ca.cert
	var warnings []string
	for i, c := range append([]*x509.Certificate{cert}, ca.chain...) {
		what := fmt.Sprintf("%q", c.Subject.CommonName)
		if i > 0 {
			what = fmt.Sprintf("chain certificate %q (issuer of %q)", c.Subject.CommonName, cert.Subject.CommonName)
		}
		w, err := checkImportedCACert(c, what, i > 0, opt)
		if err != nil {
			return nil, err
		}
		warnings = append(warnings, w...)
	}
	if err := signsLeaves(cert, ca.chain, ca.key, opt.Now); err != nil {
		return nil, fmt.Errorf("%q: a test leaf signed with the key does not verify through the chain: %v", cert.Subject.CommonName, err)
	}
	return warnings, nil
}

// checkImportedCACert holds one certificate of the imported chain to what
// a CA that issues (or, issuer, is above) the appliance's leaves must be.
// An issuer without a key usage extension may sign certificates (RFC 5280
// leaves it unrestricted); the CA that signs the leaves must say so.
func checkImportedCACert(cert *x509.Certificate, what string, issuer bool, opt CAImportOptions) ([]string, error) {
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return nil, fmt.Errorf("%s is not a CA certificate (basicConstraints CA:TRUE is missing)", what)
	case cert.KeyUsage&x509.KeyUsageCertSign == 0 && (!issuer || cert.KeyUsage != 0):
		return nil, fmt.Errorf("%s lacks the keyCertSign key usage, so clients refuse certificates it signs", what)
	case len(cert.ExtKeyUsage) > 0 && !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny):
		return nil, fmt.Errorf("%s is restricted by extended key usage to purposes other than serverAuth", what)
	}
	if err := caKeyStrongEnough(cert.PublicKey, opt); err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	switch {
	case opt.Now.Before(cert.NotBefore):
		return nil, fmt.Errorf("%s is not valid before %s", what, cert.NotBefore.UTC().Format(time.RFC3339))
	case !opt.Now.Before(cert.NotAfter):
		return nil, fmt.Errorf("%s expired on %s", what, cert.NotAfter.UTC().Format(time.DateOnly))
	}
	var warnings []string
	if left := cert.NotAfter.Sub(opt.Now); left < opt.ExpiryNotice {
		warnings = append(warnings, fmt.Sprintf("%s expires on %s (in %d days): leaves never outlive it, and clients need its successor before then",
			what, cert.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24)))
	}
	if len(cert.PermittedDNSDomains)+len(cert.ExcludedDNSDomains)+len(cert.PermittedIPRanges)+len(cert.ExcludedIPRanges) > 0 {
		warnings = append(warnings, fmt.Sprintf("%s has name constraints: clients refuse leaves it signs for names outside them", what))
	}
	return warnings, nil
}

func (o CAImportOptions) withDefaults() CAImportOptions {
	if o.MinRSABits == 0 {
		o.MinRSABits = DefaultCAMinRSABits
	}
	if o.MinECBits == 0 {
		o.MinECBits = DefaultCAMinECBits
	}
	if o.ExpiryNotice == 0 {
		o.ExpiryNotice = DefaultCAExpiryNotice
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return o
}

// certificatesOf parses every block of a certificate file, which must all
// be certificates (a key pasted into it is refused, not skipped).
func certificatesOf(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type != "CERTIFICATE":
			return nil, fmt.Errorf("holds a PEM %q block; give the CA certificate and its chain only", block.Type)
		case len(certs) > maxCAChain:
			return nil, fmt.Errorf("holds more than %d certificates; give the CA certificate and the issuers above it only", maxCAChain+1)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return certs, nil
}

// keyCertificate is the certificate of the file that key belongs to.
func keyCertificate(certs []*x509.Certificate, key crypto.Signer) (*x509.Certificate, error) {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if ok {
		for _, c := range certs {
			if pub.Equal(c.PublicKey) {
				return c, nil
			}
		}
	}
	if len(certs) == 1 {
		return nil, fmt.Errorf("the key does not match the certificate (%q)", certs[0].Subject.CommonName)
	}
	names := make([]string, len(certs))
	for i, c := range certs {
		names[i] = fmt.Sprintf("%q", c.Subject.CommonName)
	}
	return nil, fmt.Errorf("the key does not match any certificate of the file (%s)", strings.Join(names, ", "))
}

// chainAbove orders the other certificates of the file from cert's issuer
// up: each must have issued the one below it (name and signature), and
// none may be left over — a file with another CA's certificate in it is
// not a chain, and serving it would be half using it.
func chainAbove(cert *x509.Certificate, certs []*x509.Certificate) ([]*x509.Certificate, error) {
	rest := slices.DeleteFunc(slices.Clone(certs), func(c *x509.Certificate) bool { return c == cert })
	var chain []*x509.Certificate
	for below := cert; len(rest) > 0 && !selfSigned(below); {
		i := slices.IndexFunc(rest, func(c *x509.Certificate) bool { return bytes.Equal(below.RawIssuer, c.RawSubject) })
		if i < 0 {
			break
		}
		up := rest[i]
		if err := below.CheckSignatureFrom(up); err != nil {
			return nil, fmt.Errorf("%q names %q as its issuer, but its signature does not verify with that certificate: %v",
				below.Subject.CommonName, up.Subject.CommonName, err)
		}
		chain = append(chain, up)
		rest = slices.Delete(rest, i, i+1)
		below = up
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("%q is not in the chain of %q (the file must hold the CA certificate and the issuers above it, nothing else)",
			rest[0].Subject.CommonName, cert.Subject.CommonName)
	}
	return chain, nil
}

func importKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block != nil && (block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "") {
		return nil, errors.New("the key is encrypted; decrypt it first (openssl pkey -in FILE -out FILE.plain)")
	}
	return parsePrivateKeyPEM(b)
}

// caKeyStrongEnough applies upstream's key rules to the CA's own key.
// Ed25519 is refused although it is strong: browsers do not accept
// certificates signed with it.
func caKeyStrongEnough(pub crypto.PublicKey, opt CAImportOptions) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < opt.MinRSABits {
			return fmt.Errorf("RSA key of %d bits is too weak (minimum %d)", bits, opt.MinRSABits)
		}
	case *ecdsa.PublicKey:
		if bits := k.Curve.Params().BitSize; bits < opt.MinECBits {
			return fmt.Errorf("ECDSA key on %s is too weak (minimum %d bits)", k.Curve.Params().Name, opt.MinECBits)
		}
	case ed25519.PublicKey:
		return errors.New("Ed25519 CA keys are not accepted by browsers; use ECDSA P-256 or larger, or RSA")
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}

// signsLeaves proves the key signs what the certificate store will ask of
// it: a throwaway leaf must verify through the chain to its top (the root,
// or the highest issuer the file gave), with serverAuth allowed all the way
// and every path-length and name constraint of the chain honoured.
func signsLeaves(cert *x509.Certificate, chain []*x509.Certificate, key crypto.Signer, now time.Time) error {
	serial, err := randomSerial()
	if err != nil {
		return err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "portcullis import check"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Minute),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// No name: a CA with name constraints is imported with a warning,
		// and the check is of the chain, not of one name.
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, cert, &leafKey.PublicKey, key)
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	all := append([]*x509.Certificate{cert}, chain...)
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(all[len(all)-1])
	for _, c := range all[:len(all)-1] {
		inter.AddCert(c)
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// installCA writes ca into a fresh directory beside dir and swaps it into
// place: rename when there is no dir, RENAME_EXCHANGE otherwise (the old CA
// ends up in the fresh directory, which is then removed).
func installCA(dir string, ca *CA, opt CAImportOptions) (err error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("CA import: %w", err)
	}
	staging, err := os.MkdirTemp(parent, ".ca-import-*") // 0700
	if err != nil {
		return fmt.Errorf("CA import: %w", err)
	}
	defer func() { _ = os.RemoveAll(staging) }()
	pkcs8, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return fmt.Errorf("CA import: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	defer clear(keyPEM)
	if err := writeFileAtomic(filepath.Join(staging, caKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(staging, caCertFile), ca.filePEM(), 0o644); err != nil {
		return err
	}
	if opt.Owner != nil {
		for _, p := range []string{filepath.Join(staging, caKeyFile), filepath.Join(staging, caCertFile), staging} {
			if err := os.Chown(p, opt.Owner.UID, opt.Owner.GID); err != nil {
				return fmt.Errorf("CA import: %w", err)
			}
		}
	}
	if err := syncDir(staging); err != nil {
		return err
	}
	if _, err := os.Lstat(dir); err == nil {
		err = unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE)
		if err != nil {
			return fmt.Errorf("CA import: swap %s into place: %w", dir, err)
		}
	} else if err := os.Rename(staging, dir); err != nil {
		return fmt.Errorf("CA import: %w", err)
	}
	return syncDir(parent)
}
