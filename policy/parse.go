package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds one policy file; a policy file bigger than this is a
// mistake (or an attack on the parser), not a policy.
const MaxFileSize = 8 << 20

// Parse reads one policy file. name is only used in error positions.
// References between files are checked by Compile and Check once every file
// is merged. On decoding errors the partial set (every part that decoded)
// is returned with the ErrorList, so `policy check` can report reference
// and logic problems in the same run; it must not be compiled for use.
func Parse(name string, data []byte) (set *PolicySet, err error) {
	// yaml.v3 has had panics on hostile input; a policy file must never
	// take the appliance down, so a panic becomes a syntax error.
	defer func() {
		if r := recover(); r != nil {
			set, err = nil, ErrorList{{Pos: Pos{File: name, Line: 1, Col: 1}, Kind: ErrSyntax,
				Msg: fmt.Sprintf("yaml parser failed: %v", r), Hint: "simplify the file; check quoting and indentation"}}
		}
	}()
	if len(data) > MaxFileSize {
		return nil, ErrorList{{Pos: Pos{File: name, Line: 1, Col: 1}, Kind: ErrBadValue,
			Msg: fmt.Sprintf("file is %d bytes, more than the %d allowed", len(data), MaxFileSize), Hint: "split the policies into several files"}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, ErrorList{syntaxError(name, err)}
		}
		docs = append(docs, &n)
	}
	set = &PolicySet{}
	c := &errs{}
	if len(docs) > 1 {
		c.add(Pos{File: name, Line: docs[1].Line, Col: docs[1].Column}, ErrSyntax,
			"put each policy set in its own file or merge the documents", "a policy file holds one YAML document, found %d", len(docs))
	}
	if len(docs) == 0 || len(docs[0].Content) == 0 {
		return set, c.err()
	}
	root := docs[0].Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return set, c.err()
	}
	d := &decoder{file: name, errs: c}
	d.decode(root, reflect.ValueOf(set).Elem(), "")
	return set, c.err()
}

// ParseReader reads a policy file from r, refusing more than MaxFileSize.
func ParseReader(name string, r io.Reader) (*PolicySet, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return Parse(name, data)
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func syntaxError(name string, err error) *Error {
	line := 1
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		if l, e := strconv.Atoi(m[1]); e == nil {
			line = l
		}
	}
	return &Error{Pos: Pos{File: name, Line: line, Col: 1}, Kind: ErrSyntax, Msg: err.Error(),
		Hint: "check indentation (spaces, not tabs) and quote values containing ': ' or '#'"}
}

// Merge combines the sets of several files into one, in order. Lists are
// concatenated; settings may be written in one file only, so two files can
// never silently disagree about a default.
func Merge(sets ...*PolicySet) (*PolicySet, error) {
	out := &PolicySet{}
	c := &errs{}
	for _, s := range sets {
		if s == nil {
			continue
		}
		out.Apps = append(out.Apps, s.Apps...)
		out.CustomDomains = append(out.CustomDomains, s.CustomDomains...)
		out.IPTags = append(out.IPTags, s.IPTags...)
		out.DeviceTags = append(out.DeviceTags, s.DeviceTags...)
		out.Detectors = append(out.Detectors, s.Detectors...)
		out.AccessPolicies = append(out.AccessPolicies, s.AccessPolicies...)
		out.SessionPolicies = append(out.SessionPolicies, s.SessionPolicies...)
		if s.Settings != nil {
			if out.Settings != nil {
				c.add(s.Settings.At, ErrDuplicate, "keep one settings block for the whole directory",
					"settings are already defined at %s", out.Settings.At)
				continue
			}
			st := *s.Settings
			out.Settings = &st
		}
	}
	return out, c.err()
}

// Marshal serialises a set in canonical form: Parse(Marshal(s)) describes
// the same policies as s.
func Marshal(set *PolicySet) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(set); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MarshalYAML writes the short list form when only any_of is set.
func (n Names) MarshalYAML() (any, error) {
	if len(n.NoneOf) == 0 {
		return n.AnyOf, nil
	}
	return struct {
		AnyOf  []string `yaml:"any_of,omitempty"`
		NoneOf []string `yaml:"none_of,omitempty"`
	}{n.AnyOf, n.NoneOf}, nil
}
