package protect

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"unicode/utf8"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// pdfPermissions is the /P value of encrypted output (doc.go): bits 7, 8
// and 13–32 set as reserved, bit 10 (accessibility) set, print (3, 12),
// modify (4), copy (5), annotate (6), fill forms (9) and assemble (11)
// cleared.
const pdfPermissions = model.PermissionFlags(0xF2C0)

// pdfConfig is pdfcpu's configuration for one file, built here rather than
// with model.NewDefaultConfiguration, which creates a configuration
// directory (and font cache) under the user's home on first use.
func pdfConfig(o Options, lim filetype.Limits) (*model.Configuration, error) {
	limits := model.DefaultResourceLimits()
	limits.MaxStreamBytes = lim.MaxInput
	limits.MaxDecodeBytes = lim.MaxUncompressed
	limits.MaxObjectCount = 2_000_000
	limits.MaxXRefEntries = 2_000_000
	limits.MaxObjectStreamCount = 200_000
	conf := &model.Configuration{
		Version:           model.VersionStr,
		Reader15:          true,
		ValidationMode:    model.ValidationRelaxed,
		Eol:               types.EolLF,
		WriteObjectStream: true,
		WriteXRefStream:   true,
		EncryptUsingAES:   true,
		EncryptKeyLength:  256,
		Permissions:       pdfPermissions,
		Cmd:               model.ADDPROPERTIES,
		TimestampFormat:   "2006-01-02 15:04",
		DateFormat:        "2006-01-02",
		Offline:           true, // no revocation or link checks over the network
		Limits:            limits,
	}
	if o.Encrypt {
		pw, err := preparePassword(o.Password)
		if err != nil {
			return nil, err
		}
		conf.Cmd = model.ENCRYPT
		conf.UserPW = pw
		conf.OwnerPW = ownerPassword()
	}
	return conf, nil
}

// maxPassword is the longest password PDF readers use: they cut what is
// typed to 127 bytes.
const maxPassword = 127

// preparePassword turns the user password into the bytes a PDF 2.0 reader
// derives from what the user types: ISO 32000-2 runs passwords through
// SASLprep and keeps 127 bytes. pdfcpu hashes the password as given, so it
// is prepared here, with PRECIS OpaqueString (RFC 8265, SASLprep's
// successor: non-ASCII spaces become spaces, NFC). Passwords whose
// preparation differs between readers (compatibility characters, which
// SASLprep folds with NFKC), that the profile rejects (control characters,
// unassigned code points) or that are longer than 127 bytes are refused
// rather than silently changed: the user could not open the file. An
// ordinary password, ASCII or not, passes through unchanged.
func preparePassword(pw string) (string, error) {
	if !utf8.ValidString(pw) {
		return "", fmt.Errorf("%w: password is not valid UTF-8", ErrOptions)
	}
	prepared, err := precis.OpaqueString.String(pw)
	if err != nil {
		return "", fmt.Errorf("%w: password: %v", ErrOptions, err)
	}
	if norm.NFKC.String(prepared) != prepared {
		return "", fmt.Errorf("%w: password has compatibility characters that PDF readers prepare differently", ErrOptions)
	}
	if len(prepared) > maxPassword {
		return "", fmt.Errorf("%w: password longer than %d bytes", ErrOptions, maxPassword)
	}
	return prepared, nil
}

// ownerPassword is 256 random bits, used once and forgotten: nobody holds
// the permissions ("owner") password of a protected file.
func ownerPassword() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
