package protect

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// The four OOXML parts that carry labels or point to them, read with
// walkXML and edited by inserting elements before their root's end tag.

// relsScan is what the package relationships say.
type relsScan struct {
	root            *element
	ids             map[string]bool
	customTarget    string // part name of the custom properties, "" when none
	labelInfoTarget string
	strict          bool
}

func scanRels(b []byte) (*relsScan, error) {
	s := &relsScan{ids: map[string]bool{}}
	var bad error
	err := walkXML(b, func(e *element) {
		switch {
		case e.depth == 0:
			s.root = e
		case e.depth == 1 && e.name.Local == "Relationship":
			s.ids[e.attrValue("Id")] = true
			typ := e.attrValue("Type")
			s.strict = s.strict || strings.HasPrefix(typ, strictRelPrefix)
			if e.attrValue("TargetMode") == "External" || (typ != customPropsRelType && typ != labelInfoRelType) {
				return
			}
			name, err := partName(e.attrValue("Target"))
			if err != nil {
				bad = err
				return
			}
			if typ == customPropsRelType {
				s.customTarget = name
			} else {
				s.labelInfoTarget = name
			}
		}
	})
	switch {
	case err != nil:
		return nil, err
	case bad != nil:
		return nil, bad
	case s.root.name.Local != "Relationships":
		return nil, fmt.Errorf("%w: root element is <%s>", filetype.ErrFormat, s.root.name.Local)
	}
	return s, nil
}

// freeID is a relationship id not used yet.
func (s *relsScan) freeID() string {
	for n := len(s.ids) + 1; ; n++ {
		if id := "rId" + strconv.Itoa(n); !s.ids[id] {
			return id
		}
	}
}

// partName resolves a package relationship target (relative to the
// package root) to a zip entry name.
func partName(target string) (string, error) {
	name := path.Clean(strings.TrimPrefix(target, "/"))
	if name == "." || name == ".." || strings.HasPrefix(name, "../") || target == "" {
		return "", fmt.Errorf("%w: relationship target %q outside the package", filetype.ErrFormat, target)
	}
	return name, nil
}

// typesScan is what [Content_Types].xml says.
type typesScan struct {
	root      *element
	overrides map[string]bool // lower-case part names (OPC names are case-insensitive)
}

func scanContentTypes(b []byte) (*typesScan, error) {
	s := &typesScan{overrides: map[string]bool{}}
	err := walkXML(b, func(e *element) {
		switch {
		case e.depth == 0:
			s.root = e
		case e.depth == 1 && e.name.Local == "Override":
			s.overrides[strings.ToLower(e.attrValue("PartName"))] = true
		}
	})
	if err != nil {
		return nil, err
	}
	if s.root.name.Local != "Types" {
		return nil, fmt.Errorf("%w: root element is <%s>", filetype.ErrFormat, s.root.name.Local)
	}
	return s, nil
}

// customScan is the layout of an existing custom properties part.
type customScan struct {
	root     *element
	vtPrefix string
	vtScoped bool // the root declares the docPropsVTypes namespace
	maxPID   int
	drop     []edit // stale properties of the label being applied
}

func scanCustom(b []byte, lbl *label, found *foundLabels) (*customScan, error) {
	s := &customScan{}
	err := walkXML(b, func(e *element) {
		switch {
		case e.depth == 0:
			s.root = e
		case e.depth == 1 && e.name.Local == "property":
			if pid, err := strconv.Atoi(e.attrValue("pid")); err == nil && pid > s.maxPID && pid < 1<<30 {
				s.maxPID = pid
			}
			name := e.attrValue("name")
			found.prop(name, e.text)
			if lbl.owns(name) {
				s.drop = append(s.drop, edit{e.start, e.end, ""})
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if s.root.name.Local != "Properties" {
		return nil, fmt.Errorf("%w: root element is <%s>", filetype.ErrFormat, s.root.name.Local)
	}
	if prefix, ok := s.root.nsPrefix(customPropsNS); !ok || prefix != s.root.name.Space {
		return nil, fmt.Errorf("%w: custom properties root is not in the %s namespace", filetype.ErrFormat, customPropsNS)
	}
	s.vtPrefix, s.vtScoped = s.root.nsPrefix(vtNS)
	if !s.vtScoped {
		s.vtPrefix = "vt"
	}
	return s, nil
}

// markup is the label's properties as children of this part's root.
func (s *customScan) markup(lbl *label) string {
	return customProps(lbl, s.root.name.Space, s.vtPrefix, !s.vtScoped, max(s.maxPID, 1)+1)
}

// customProps renders the label's properties; pids go on from firstPID
// (2 is the first one Office uses).
func customProps(lbl *label, prefix, vt string, declareVT bool, firstPID int) string {
	var b strings.Builder
	prop, str := qualified(prefix, "property"), qualified(vt, "lpwstr")
	decl := ""
	if declareVT {
		decl = ` xmlns:` + vt + `="` + vtNS + `"`
	}
	for i, p := range lbl.props {
		fmt.Fprintf(&b, `<%s fmtid="%s" pid="%d" name="%s"><%s%s>%s</%s></%s>`,
			prop, customPropsFMTID, firstPID+i, escapeXML(p.name), str, decl, escapeXML(p.value), str, prop)
	}
	return b.String()
}

// newCustomPart is a custom properties part holding only the label.
func newCustomPart(lbl *label) string {
	return `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\r\n" +
		`<Properties xmlns="` + customPropsNS + `" xmlns:vt="` + vtNS + `">` +
		customProps(lbl, "", "vt", false, 2) + `</Properties>`
}

// labelInfoScan is the layout of docMetadata/LabelInfo.xml, where newer
// Office versions keep label state (GUIDs, no names).
type labelInfoScan struct {
	root *element
	drop []edit
}

func scanLabelInfo(b []byte, lbl *label, found *foundLabels) (*labelInfoScan, error) {
	s := &labelInfoScan{}
	err := walkXML(b, func(e *element) {
		switch {
		case e.depth == 0:
			s.root = e
		case e.depth == 1 && e.name.Local == "label":
			id := strings.ToLower(strings.Trim(e.attrValue("id"), "{}"))
			enabled := e.attrValue("enabled")
			found.state(id, (enabled == "1" || strings.EqualFold(enabled, "true")) && e.attrValue("removed") != "1")
			if id == lbl.id {
				s.drop = append(s.drop, edit{e.start, e.end, ""})
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if s.root.name.Local != "labelList" {
		return nil, fmt.Errorf("%w: root element is <%s>", filetype.ErrFormat, s.root.name.Local)
	}
	return s, nil
}

func (s *labelInfoScan) markup(lbl *label) string {
	site := ""
	if lbl.site != "" {
		site = ` siteId="{` + lbl.site + `}"`
	}
	return `<` + qualified(s.root.name.Space, "label") + ` id="{` + lbl.id + `}" enabled="1" method="Standard"` + site + ` contentBits="0" removed="0"/>`
}
