package protect

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// infoLabels records the MSIP_Label_* keys of the Info dictionary.
func infoLabels(ctx *model.Context, found *foundLabels) error {
	if ctx.Info == nil {
		return nil
	}
	d, err := ctx.DereferenceDict(*ctx.Info)
	if err != nil || d == nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(d)) {
		if !strings.HasPrefix(k, msipPrefix) {
			continue
		}
		found.prop(k, pdfValue(ctx, d[k]))
	}
	return nil
}

// pdfValue is the text of an Info value: a string as most writers use,
// or a boolean or name as some write Enabled.
func pdfValue(ctx *model.Context, o types.Object) string {
	if s, err := ctx.DereferenceText(o); err == nil {
		return s
	}
	o, err := ctx.Dereference(o)
	if err != nil {
		return ""
	}
	switch v := o.(type) {
	case types.Boolean:
		return strconv.FormatBool(v.Value())
	case types.Name:
		return v.Value()
	}
	return ""
}

// pdfMetadata is the document's XMP stream, when it has one.
type pdfMetadata struct {
	sd   *types.StreamDict
	xmp  []byte
	scan *xmpScan
}

// readMetadata decodes the catalog's XMP stream and records its labels. A
// stream that cannot be decoded or parsed is an error: its labels would go
// unseen, and an existing label must never be overwritten.
func readMetadata(ctx *model.Context, lbl *label, found *foundLabels, lim filetype.Limits) (*pdfMetadata, error) {
	root, err := ctx.Catalog()
	if err != nil {
		return nil, err
	}
	o, ok := root["Metadata"]
	if !ok {
		return nil, nil
	}
	sd, _, err := ctx.DereferenceStreamDict(o)
	if err != nil || sd == nil {
		return nil, err
	}
	if err := sd.DecodeWithLimit(lim.MaxUncompressed); err != nil {
		return nil, fmt.Errorf("%w: XMP metadata stream: %v", filetype.ErrFormat, err)
	}
	if len(sd.Content) > maxPart {
		return nil, fmt.Errorf("%w: XMP metadata is %d bytes (limit %d)", filetype.ErrTooLarge, len(sd.Content), maxPart)
	}
	scan, err := scanXMP(sd.Content, lbl, found)
	if err != nil {
		return nil, fmt.Errorf("XMP metadata: %w", err)
	}
	if scan.rdf == nil {
		return nil, fmt.Errorf("%w: XMP metadata without rdf:RDF", filetype.ErrFormat)
	}
	return &pdfMetadata{sd: sd, xmp: sd.Content, scan: scan}, nil
}

// writeLabel puts the label into the Info dictionary (creating it when the
// file has none) and into the XMP metadata (likewise).
func writeLabel(ctx *model.Context, meta *pdfMetadata, lbl *label) error {
	if ctx.Info == nil {
		ir, err := ctx.IndRefForNewObject(types.NewDict())
		if err != nil {
			return err
		}
		ctx.Info = ir
	}
	d, err := ctx.DereferenceDict(*ctx.Info)
	if err != nil {
		return err
	}
	if d == nil {
		return fmt.Errorf("%w: Info dictionary is missing", filetype.ErrFormat)
	}
	for k := range d {
		if lbl.owns(k) {
			delete(d, k)
		}
	}
	for _, p := range lbl.props {
		s, err := pdfString(p.value)
		if err != nil {
			return err
		}
		d[p.name] = s
	}

	root, err := ctx.Catalog()
	if err != nil {
		return err
	}
	if meta == nil {
		sd := types.StreamDict{Dict: types.NewDict(), Content: []byte(newXMP(lbl))}
		sd.InsertName("Type", "Metadata")
		sd.InsertName("Subtype", "XML")
		if err := sd.Encode(); err != nil {
			return err
		}
		ir, err := ctx.IndRefForNewObject(sd)
		if err != nil {
			return err
		}
		root["Metadata"] = *ir
		return nil
	}
	xmp, err := applyEdits(meta.xmp, append(meta.scan.drop, appendChildren(meta.scan.rdf, xmpDescription(lbl))))
	if err != nil {
		return err
	}
	sd := *meta.sd
	sd.Content = xmp
	if err := sd.Encode(); err != nil {
		return err
	}
	if ir, ok := root["Metadata"].(types.IndirectRef); ok {
		entry, found := ctx.FindTableEntryForIndRef(&ir)
		if !found || entry == nil {
			return fmt.Errorf("%w: XMP metadata object is missing", filetype.ErrFormat)
		}
		entry.Object = sd
	} else {
		root["Metadata"] = sd
	}
	return nil
}

// pdfString encodes a value as a PDF text string: PDFDocEncoding-compatible
// ASCII as is, anything else as UTF-16BE with a byte order mark.
func pdfString(s string) (types.StringLiteral, error) {
	var esc *string
	var err error
	if isPrintableASCII(s) {
		esc, err = types.Escape(s)
	} else {
		esc, err = types.EscapedUTF16String(s)
	}
	if err != nil {
		return "", err
	}
	return types.StringLiteral(*esc), nil
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
