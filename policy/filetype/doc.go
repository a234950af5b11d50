// Package filetype recognises files by their content (magic bytes), not by
// their name, extracts the text of OOXML documents (docx, xlsx, pptx) and
// PDF text streams for content inspection, and reads sensitivity labels
// (Microsoft Purview MSIP_Label_* properties) from both.
//
// Everything is bounded: inputs are io.ReaderAt with a size, archive entries
// and decompressed bytes have limits (Limits), and a file that would exceed
// them fails with ErrTooLarge or ErrBomb instead of exhausting memory. The
// caller maps those to the "inspection failed / over the size limit"
// default behaviour of the policy settings.
package filetype

import "errors"

// Sentinel errors.
var (
	// ErrFormat: the file is not what it claims to be, or is corrupt.
	ErrFormat = errors.New("malformed file")
	// ErrTooLarge: the file or its extracted text exceeds a limit.
	ErrTooLarge = errors.New("file exceeds the inspection limits")
	// ErrBomb: an archive entry expands far beyond its compressed size.
	ErrBomb = errors.New("compression ratio too high (zip bomb?)")
)

// Limits bound extraction. Zero fields take the defaults.
type Limits struct {
	MaxInput        int64 // bytes of the file itself read (PDF is read whole)
	MaxEntries      int   // archive entries looked at
	MaxUncompressed int64 // total decompressed bytes
	MaxRatio        int64 // per entry, uncompressed/compressed
}

// DefaultLimits are generous for office documents and small enough to
// keep a worker's memory in check.
var DefaultLimits = Limits{MaxInput: 64 << 20, MaxEntries: 10000, MaxUncompressed: 256 << 20, MaxRatio: 200}

func (l Limits) withDefaults() Limits {
	if l.MaxInput <= 0 {
		l.MaxInput = DefaultLimits.MaxInput
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultLimits.MaxEntries
	}
	if l.MaxUncompressed <= 0 {
		l.MaxUncompressed = DefaultLimits.MaxUncompressed
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = DefaultLimits.MaxRatio
	}
	return l
}

// Label is a sensitivity label found in a file.
type Label struct {
	ID      string // label GUID
	Name    string
	Enabled bool
	SiteID  string // tenant
	Method  string // Standard / Privileged
}

// Info is what extraction learned besides the text.
type Info struct {
	Type   Type
	Labels []Label
}

// LabelName is the name of the first enabled label, "" when none: what
// policy.FileInfo.Label wants.
func (i *Info) LabelName() string {
	for _, l := range i.Labels {
		if l.Enabled && l.Name != "" {
			return l.Name
		}
	}
	return ""
}
