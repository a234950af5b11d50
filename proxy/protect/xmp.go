package protect

import (
	"fmt"
	"strings"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

const (
	rdfNS  = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
	pdfxNS = "http://ns.adobe.com/pdfx/1.3/"
)

// xmpScan is the layout of an XMP packet.
type xmpScan struct {
	rdf  *element // the rdf:RDF element that receives the label
	drop []edit   // element-form properties of a stale label with our GUID
}

// scanXMP records the MSIP properties of a packet, in element form
// (<pdfx:MSIP_Label_…_Name>…</…>) and attribute form (pdfx:MSIP_Label_…="…"),
// and plans the removal of both forms for a stale label with the GUID being
// applied.
func scanXMP(b []byte, lbl *label, found *foundLabels) (*xmpScan, error) {
	s := &xmpScan{}
	var bad error
	err := walkXML(b, func(e *element) {
		if e.name.Local == "RDF" && s.rdf == nil {
			s.rdf = e
		}
		if strings.HasPrefix(e.name.Local, msipPrefix) {
			found.prop(e.name.Local, e.text)
			if lbl != nil && lbl.owns(e.name.Local) {
				s.drop = append(s.drop, edit{e.start, e.end, ""})
			}
		}
		for _, a := range e.attr {
			if !strings.HasPrefix(a.Name.Local, msipPrefix) {
				continue
			}
			found.prop(a.Name.Local, a.Value)
			if lbl != nil && lbl.owns(a.Name.Local) {
				ed, ok := attrSpan(b, e, qualified(a.Name.Space, a.Name.Local))
				if !ok {
					bad = fmt.Errorf("%w: XMP attribute %s not found in its tag", filetype.ErrFormat, a.Name.Local)
				}
				s.drop = append(s.drop, ed)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return s, bad
}

// xmpDescription is an rdf:Description carrying the label in the pdfx
// namespace, the XMP mirror of custom Info dictionary keys. The properties
// are attributes (RDF's short form for simple values): policy/filetype's
// byte scanner reads a value after the name, and in element form it would
// also find the name in each end tag, with an empty value after it. The
// element declares the namespaces it uses so it is valid wherever it is put.
func xmpDescription(lbl *label) string {
	var b strings.Builder
	b.WriteString(`<rdf:Description xmlns:rdf="` + rdfNS + `" xmlns:pdfx="` + pdfxNS + `" rdf:about=""`)
	for _, p := range lbl.props {
		b.WriteString(" pdfx:" + p.name + `="` + escapeXML(p.value) + `"`)
	}
	b.WriteString(`/>`)
	return b.String()
}

// newXMP is a whole XMP packet holding only the label.
func newXMP(lbl *label) string {
	return "<?xpacket begin=\"\ufeff\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n" +
		`<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="` + rdfNS + `">` + xmpDescription(lbl) +
		"</rdf:RDF></x:xmpmeta>\n<?xpacket end=\"w\"?>"
}
