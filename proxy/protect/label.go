package protect

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// labelNamespace is the UUID namespace of GUIDs derived from label names.
// Changing it changes every derived GUID: it is part of the documented
// contract (doc.go).
var labelNamespace = uuid.MustParse("ef4bfdfd-129a-4aa2-b52d-bceec5c75a94")

const (
	msipPrefix   = "MSIP_Label_"
	maxLabelName = 256 // bytes; Purview display names are far shorter
	// maxLabels bounds the labels collected from one file, as
	// policy/filetype does: more than that is a hostile file.
	maxLabels = 16
)

// labelProp is one MSIP_Label_<guid>_<Key> property.
type labelProp struct{ name, value string }

// label is a validated label to apply.
type label struct {
	id    string // lowercase GUID, no braces
	name  string
	site  string // lowercase GUID or ""
	props []labelProp
}

// newLabel validates the label part of o; it returns nil when o asks for
// no label.
func newLabel(o Options, now time.Time) (*label, error) {
	if o.Label == "" {
		if o.LabelID != "" {
			return nil, fmt.Errorf("%w: LabelID without a Label name", ErrOptions)
		}
		return nil, nil
	}
	if err := checkLabelName(o.Label); err != nil {
		return nil, err
	}
	l := &label{name: o.Label}
	if o.LabelID == "" {
		l.id = uuid.NewSHA1(labelNamespace, []byte(o.Label)).String()
	} else {
		id, err := uuid.Parse(o.LabelID)
		if err != nil {
			return nil, fmt.Errorf("%w: LabelID %q is not a GUID", ErrOptions, o.LabelID)
		}
		l.id = id.String()
	}
	if o.SiteID != "" {
		site, err := uuid.Parse(o.SiteID)
		if err != nil {
			return nil, fmt.Errorf("%w: SiteID %q is not a GUID", ErrOptions, o.SiteID)
		}
		l.site = site.String()
	}
	// The order Purview writes them in.
	p := l.prefix()
	l.props = append(l.props,
		labelProp{p + "Enabled", "true"},
		labelProp{p + "SetDate", now.UTC().Format("2006-01-02T15:04:05Z")},
		labelProp{p + "Method", "Standard"},
		labelProp{p + "Name", l.name},
	)
	if l.site != "" {
		l.props = append(l.props, labelProp{p + "SiteId", l.site})
	}
	l.props = append(l.props,
		labelProp{p + "ActionId", uuid.NewString()},
		labelProp{p + "ContentBits", "0"},
	)
	return l, nil
}

// prefix is the property name prefix of this label: MSIP_Label_<guid>_.
func (l *label) prefix() string { return msipPrefix + l.id + "_" }

// owns reports whether a property name belongs to this label's GUID (in
// any letter case, with or without braces).
func (l *label) owns(prop string) bool {
	id, _, ok := splitLabelProp(prop)
	return ok && id == l.id
}

func checkLabelName(s string) error {
	if len(s) > maxLabelName || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return fmt.Errorf("%w: label name must be valid UTF-8, at most %d bytes, without surrounding blanks", ErrOptions, maxLabelName)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: label name has a control character", ErrOptions)
		}
	}
	return nil
}

// splitLabelProp splits MSIP_Label_<guid>_<Key> into the normalised GUID
// and the key, the way policy/filetype reads them.
func splitLabelProp(name string) (id, key string, ok bool) {
	rest, ok := strings.CutPrefix(name, msipPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return "", "", false
	}
	return strings.ToLower(strings.Trim(rest[:i], "{}")), rest[i+1:], true
}

// foundLabels collects the labels a file already carries.
type foundLabels struct{ labels []filetype.Label }

// prop records one MSIP_Label_<guid>_<Key> = value property.
func (f *foundLabels) prop(name, value string) {
	id, key, ok := splitLabelProp(name)
	if !ok {
		return
	}
	value = strings.TrimSpace(value)
	switch key {
	case "Name":
		if l := f.byID(id); l != nil {
			l.Name = value
		}
	case "Enabled":
		if l := f.byID(id); l != nil {
			l.Enabled = strings.EqualFold(value, "true") || value == "1"
		}
	}
}

// state records a label known by GUID and state only (LabelInfo.xml).
func (f *foundLabels) state(id string, enabled bool) {
	if l := f.byID(strings.ToLower(strings.Trim(id, "{}"))); l != nil {
		l.Enabled = l.Enabled || enabled
	}
}

func (f *foundLabels) byID(id string) *filetype.Label {
	if i := slices.IndexFunc(f.labels, func(l filetype.Label) bool { return l.ID == id }); i >= 0 {
		return &f.labels[i]
	}
	if len(f.labels) >= maxLabels || id == "" {
		return nil
	}
	f.labels = append(f.labels, filetype.Label{ID: id})
	return &f.labels[len(f.labels)-1]
}

// kept names the file's enabled label: its name, else its GUID; "" when
// the file has none.
func (f *foundLabels) kept() string {
	info := filetype.Info{Labels: f.labels}
	if name := info.LabelName(); name != "" {
		return name
	}
	for _, l := range f.labels {
		if l.Enabled {
			return "{" + l.ID + "}"
		}
	}
	return ""
}
