package revocationlab

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
)

// KeyKind is the kind of key a certificate is issued for. The zero value is
// ECDSA P-256, what the appliance's own leaves use.
type KeyKind uint8

const (
	ECDSAP256 KeyKind = iota
	ECDSAP384
	ECDSAP224 // below the gateway's EC minimum
	RSA2048
	RSA1024 // below the gateway's RSA minimum
	Ed25519
)

func (k KeyKind) String() string {
	switch k {
	case ECDSAP256:
		return "ECDSA P-256"
	case ECDSAP384:
		return "ECDSA P-384"
	case ECDSAP224:
		return "ECDSA P-224"
	case RSA2048:
		return "RSA 2048"
	case RSA1024:
		return "RSA 1024"
	case Ed25519:
		return "Ed25519"
	}
	return fmt.Sprintf("KeyKind(%d)", uint8(k))
}

// NewKey generates a key of the given kind.
func NewKey(k KeyKind) (crypto.Signer, error) {
	switch k {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case ECDSAP224:
		return ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA1024:
		return rsa.GenerateKey(rand.Reader, 1024)
	case Ed25519:
		_, key, err := ed25519.GenerateKey(rand.Reader)
		return key, err
	}
	return nil, fmt.Errorf("revocationlab: unknown key kind %d", k)
}
