package certcheck

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"
)

// maxFuzzCRLEntries bounds one input's CRL, so the fuzzer keeps its pace.
const maxFuzzCRLEntries = 8192

// oidFuzzEntryExt is an entry extension no one understands.
var oidFuzzEntryExt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 1}

// FuzzSignedCRL reaches what FuzzCRL cannot: the entries of CRLs that
// carry a valid signature, as an issuer would serve them, up to
// maxFuzzCRLEntries (about 330 KB; larger ones are TestCRLProblems' and the
// appliance lab's). data drives the entries: its first byte how many times
// each repeats (×32), then 9-byte records of a flag byte (reason code, a
// critical unknown extension, "this is the leaf") and a serial. A critical
// unknown entry extension must refuse the CRL; any other CRL must parse and
// list the leaf exactly when an entry for it is not removeFromCRL.
func FuzzSignedCRL(f *testing.F) {
	fx := fixture(f)
	f.Add([]byte{0, 0x21, 0, 0, 0, 0, 0, 0, 0, 0})                               // the leaf, keyCompromise
	f.Add([]byte{1, 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0x05, 1, 2, 3, 4, 5, 6, 7, 8}) // the leaf un-revoked
	f.Add([]byte{255, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})     // 8192 entries
	f.Add([]byte{3, 0x11, 9, 9, 9, 9, 9, 9, 9, 9})                               // critical unknown extension
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		repeat, recs := int(data[0])*32+1, data[1:]
		if len(recs) > 64*9 {
			recs = recs[:64*9]
		}
		now := time.Now()
		tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
		wantErr, leafListed := false, false
		for ; len(recs) > 0; recs = recs[min(9, len(recs)):] {
			flags := recs[0]
			serial := new(big.Int).SetBytes(recs[1:min(9, len(recs))])
			e := x509.RevocationListEntry{RevocationTime: now.Add(-time.Hour), ReasonCode: int(flags & 0x0f)}
			if e.ReasonCode == 7 || e.ReasonCode > 10 {
				e.ReasonCode = 1 // 7 is unassigned; Go would encode it anyway
			}
			if flags&0x10 != 0 {
				e.ExtraExtensions = []pkix.Extension{{Id: oidFuzzEntryExt, Critical: true, Value: []byte{5, 0}}}
				wantErr = true
			}
			n := min(repeat, maxFuzzCRLEntries-len(tmpl.RevokedCertificateEntries))
			if flags&0x20 != 0 {
				serial, n = fx.leaf.Cert.SerialNumber, 1
				leafListed = leafListed || e.ReasonCode != reasonRemoveFromCRL
			}
			for i := range n {
				e.SerialNumber = new(big.Int).Add(serial, big.NewInt(int64(i)))
				if flags&0x20 == 0 && e.SerialNumber.Cmp(fx.leaf.Cert.SerialNumber) == 0 {
					e.SerialNumber.Add(e.SerialNumber, big.NewInt(1<<40)) // only marked records name the leaf
				}
				tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, e)
			}
		}
		der, err := x509.CreateRevocationList(rand.Reader, tmpl, fx.inter.Cert, fx.inter.Key)
		if err != nil {
			t.Skip(err) // a template Go will not encode is not an input
		}
		info, err := parseCRL(der, fx.inter.Cert)
		switch {
		case wantErr:
			if !errors.Is(err, errCRLUnsupported) {
				t.Fatalf("CRL with a critical unknown entry extension: %v, want errCRLUnsupported", err)
			}
			return
		case err != nil:
			t.Fatalf("signed CRL of %d entries (%d bytes) refused: %v", len(tmpl.RevokedCertificateEntries), len(der), err)
		}
		if err := info.fresh(now); err != nil {
			t.Fatalf("fresh CRL: %v", err)
		}
		if got := info.lists(fx.leaf.Cert.SerialNumber); got != leafListed {
			t.Fatalf("leaf listed %v, want %v", got, leafListed)
		}
		if info.cost() < int64(len(info.revoked))*64 {
			t.Fatalf("cost %d for %d entries", info.cost(), len(info.revoked))
		}
	})
}
