// Package protect implements "protect on download": it rewrites a file the
// gateway is about to hand to a user so that it carries a sensitivity label
// and, for PDF, is encrypted with a password the caller chose.
//
// One entry point, Protect, takes the spooled file (an io.ReaderAt and its
// size), the type policy/filetype detected, and Options; it writes the
// protected file to dst and says in a Result what it did.
//
// # PDF: label and encryption (pdfcpu)
//
// The label goes into the Info dictionary as MSIP_Label_<GUID>_<Key>
// entries, the way labelled PDFs carry Purview labels, and is mirrored into
// the XMP metadata as pdfx: properties (created when the file has no XMP; an
// existing packet gets one more rdf:Description, every other byte kept).
// The XMP properties are written in RDF's attribute form: policy/filetype
// reads both places, and its byte scanner misreads the element form.
//
// Encryption is AES-256 with security handler revision 6: /V 5 /R 6, crypt
// filter /AESV3 for strings and streams, metadata included. pdfcpu writes
// revision 6 only for PDF 2.0 files, so encrypted output is a PDF 2.0 file;
// the revision 5 it writes for 1.x files checks passwords with one unsalted
// SHA-256 and is not acceptable. A label-only file keeps its version.
//
//   - The owner ("permissions") password is 256 random bits per file, never
//     stored and never the user password: nobody can lift the restrictions.
//   - The user password (Options.Password) opens the file. An empty one is
//     refused with ErrOptions: it would open for everyone. PDF 2.0 readers
//     run what the user types through SASLprep and keep 127 bytes; pdfcpu
//     hashes the password as given, so Protect prepares it the same way
//     (PRECIS OpaqueString) and refuses, rather than silently changes, a
//     password that the profile rejects, that readers would prepare
//     differently (compatibility characters) or that is over 127 bytes.
//   - Permissions (ISO 32000-2 table 22; /P -3392, 0xFFFFF2C0): no printing
//     (bits 3 and 12), no changes (4), no copying of text or graphics (5),
//     no annotations (6), no form filling (9), no page assembly (11). Bit 10
//     stays set, as PDF 2.0 requires: screen readers may read the text.
//     Conforming viewers honour them; the password is what keeps others out.
//
// pdfcpu rewrites the whole file (objects renumbered, object streams, its
// own cross-reference stream), so digital signatures of a signed PDF no
// longer verify. It also rebuilds a damaged cross-reference table from what
// is left; to keep a cut-off download from coming out "protected" and
// quietly short, a file without %%EOF in its last 1024 bytes is refused as
// truncated.
//
// # OOXML (docx, xlsx, pptx): label only
//
// The label's MSIP properties are added to the custom properties part
// (docProps/custom.xml, or wherever the package relationship points), which
// is created with its content-type override and relationship when missing.
// When the document has docMetadata/LabelInfo.xml (where newer Office keeps
// label state), the label is added there too. The zip is streamed through:
// every other entry is copied with its compressed bytes untouched, in its
// place; the changed parts are edited by inserting and removing elements, so
// every other byte in them stays as it was.
//
// # ErrUnsupported
//
// Types other than the four above return ErrUnsupported, and so do:
//
//   - an already encrypted PDF: it cannot be re-protected without its
//     passwords;
//   - Strict Open XML documents (ISO 29500 strict namespaces), rare and
//     using other property vocabularies;
//   - Encrypt on OOXML. Office encryption (MS-OFFCRYPTO agile encryption:
//     the package encrypted with AES-256-CBC in 4096-byte segments, an HMAC,
//     the keys in an EncryptionInfo stream, all inside a CFB compound file)
//     has no maintained Go implementation that writes it. The one Go library
//     that writes encrypted Office files (excelize, v2.11) writes the older
//     "standard" encryption (AES-128 in ECB mode, SHA-1 key derivation)
//     with its own compound-file writer, and hand-rolling the container here
//     is out of the question. Label-only is not substituted: the caller
//     asked for encryption and applies the policy's choice for files that
//     cannot be protected (block or allow).
//
// # Labels
//
// An existing label is never replaced: when the file already carries an
// enabled MSIP label (PDF Info dictionary or XMP; OOXML custom properties or
// LabelInfo.xml), it is kept and reported in Result.KeptLabel (its name, or
// its {GUID} when the file carries no name) and Result.Labeled is false;
// encryption is still applied when asked for. Entries of a disabled
// (removed) label with the GUID being applied are replaced, not duplicated.
//
// When Options.LabelID is empty the GUID is derived from the label name: the
// version-5 (SHA-1, name-based) UUID of the exact bytes of Options.Label in
// the namespace ef4bfdfd-129a-4aa2-b52d-bceec5c75a94. The same name always
// gives the same GUID, so reports and DLP rules can match it; set LabelID to
// the tenant's label GUID when Office clients must recognise the label.
// Written per label: Enabled (true), SetDate (UTC, ISO 8601), Method
// (Standard: applied by policy, not chosen by a person), Name, SiteId (when
// Options.SiteID is set), ActionId (a random GUID) and ContentBits (0: no
// visual marking is added).
//
// # Limits and memory
//
// Options.Limits (zero fields: filetype.DefaultLimits) bounds the work;
// files over MaxInput fail with filetype.ErrTooLarge. pdfcpu holds the whole
// PDF in memory: about its size (MaxInput, 64 MiB by default) plus decoded
// object and cross-reference streams (MaxUncompressed) while it is
// rewritten; the 1 MiB benchmark allocates about 3 MiB to label and 14 MiB
// to label and encrypt. OOXML is not loaded: only the XML parts above are
// decompressed (at most 16 MiB each), and every entry's declared sizes are
// checked first against MaxEntries, MaxRatio and MaxUncompressed
// (filetype.ErrTooLarge, filetype.ErrBomb); copied entries are never
// decompressed, and a part larger than it declares fails.
//
// Malformed input returns an error wrapping filetype.ErrFormat with the
// reason; a panic inside pdfcpu is recovered and reported the same way.
// Refusals (ErrUnsupported, ErrOptions, the limits) come before anything is
// written; after a later error dst may hold a partial file, which the caller
// discards.
package protect

import (
	"errors"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// Sentinel errors. Malformed, oversized and bomb-like input wraps
// filetype.ErrFormat, filetype.ErrTooLarge and filetype.ErrBomb, so a caller
// maps them as it maps inspection failures.
var (
	// ErrUnsupported: this file cannot be protected as asked (its type,
	// an already encrypted PDF, or encryption of OOXML). The caller applies
	// the policy's choice: block the download or let it through unprotected.
	ErrUnsupported = errors.New("file cannot be protected")
	// ErrOptions: the Options cannot be honoured for any file (no label and
	// no encryption, encryption without a user password, a LabelID or
	// SiteID that is not a GUID). A configuration error, not a file error.
	ErrOptions = errors.New("invalid protect options")
)

// Options says what to apply.
type Options struct {
	// Label is the sensitivity label name to apply (e.g. "Confidential");
	// "" applies no label.
	Label string
	// LabelID is the label's GUID; when empty it is derived from Label
	// (see the package documentation).
	LabelID string
	// Encrypt asks for password encryption (PDF only).
	Encrypt bool
	// Password is the user (document open) password of encrypted output.
	// The caller supplies it; an empty one is refused with ErrOptions.
	Password string
	// SiteID is the optional tenant GUID written as the label's SiteId.
	SiteID string
	// Limits bound what is read; zero fields take filetype.DefaultLimits.
	Limits filetype.Limits
}

// Result says what Protect did.
type Result struct {
	Labeled   bool   // the requested label was written
	Encrypted bool   // the output is encrypted
	KeptLabel string // a label the file already had, kept (never overwritten)
	Type      string // filetype short name: "pdf", "docx", "xlsx", "pptx"
}
