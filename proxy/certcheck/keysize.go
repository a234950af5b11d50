package certcheck

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
)

// checkKey applies the key-size rules to one certificate.
func (c *Checker) checkKey(cert *x509.Certificate) error {
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return ErrUnsupportedKey
		}
		if bits := k.N.BitLen(); bits < c.cfg.MinRSABits {
			return fmt.Errorf("%w: RSA %d bits, minimum %d", ErrWeakKey, bits, c.cfg.MinRSABits)
		}
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return ErrUnsupportedKey
		}
		if bits := k.Curve.Params().BitSize; bits < c.cfg.MinECBits {
			return fmt.Errorf("%w: ECDSA %s (%d bits), minimum %d", ErrWeakKey, k.Curve.Params().Name, bits, c.cfg.MinECBits)
		}
	case ed25519.PublicKey:
		// 128-bit security, the same class as P-256.
	default:
		return fmt.Errorf("%w: %v", ErrUnsupportedKey, cert.PublicKeyAlgorithm)
	}
	return nil
}
