package console

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/policy"
)

// Errors of the policy list's edits.
var (
	ErrNoSuchPolicy = errors.New("no such policy")
	ErrCannotEdit   = errors.New("the file cannot be edited in place")
)

// policyEdit is what the policy list changes in one policy: its disabled
// flag and its action (monitor-only), and the protect block that has to go
// with a protect action and come back with it.
type policyEdit struct {
	Disabled    *bool
	Action      policy.Action
	DropProtect bool
	Protect     string // YAML of a protect block to put back
}

// editPolicy applies e to policy id of src. It edits the bytes in place so
// the admin's comments, order and layout stay (the line with the value, or a
// new line after the id); when that is not possible (a protect block) it
// re-encodes the document. Either way the result is parsed back and must
// describe exactly the original set with e applied, or the edit is refused.
func editPolicy(file string, src []byte, id string, e policyEdit) ([]byte, error) {
	want, err := expectedSet(file, src, id, e)
	if err != nil {
		return nil, err
	}
	check := func(out []byte) bool {
		s, err := policy.Parse(file, out)
		if err != nil {
			return false
		}
		got, err := policy.Marshal(s)
		return err == nil && bytes.Equal(got, want)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCannotEdit, err)
	}
	item := findPolicyNode(&doc, id)
	if item == nil {
		return nil, fmt.Errorf("%w %q in %s", ErrNoSuchPolicy, id, file)
	}
	if !e.DropProtect && e.Protect == "" {
		if out, ok := editInPlace(src, item, e); ok && check(out) {
			return out, nil
		}
	}
	if err := editNode(item, e); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCannotEdit, err)
	}
	_ = enc.Close()
	if out := buf.Bytes(); check(out) {
		return out, nil
	}
	return nil, fmt.Errorf("%w: policy %q in %s (edit it in the editor)", ErrCannotEdit, id, file)
}

// expectedSet is the canonical form of src's set with e applied to id.
func expectedSet(file string, src []byte, id string, e policyEdit) ([]byte, error) {
	s, err := policy.Parse(file, src)
	if err != nil {
		return nil, fmt.Errorf("%w: %s does not parse: %v", ErrCannotEdit, file, err)
	}
	found := false
	for i := range s.AccessPolicies {
		if p := &s.AccessPolicies[i]; p.ID == id {
			found = true
			if e.Disabled != nil {
				p.Disabled = *e.Disabled
			}
			if e.Action != policy.ActionUnset {
				p.Action = e.Action
			}
		}
	}
	for i := range s.SessionPolicies {
		if p := &s.SessionPolicies[i]; p.ID == id {
			found = true
			if e.Disabled != nil {
				p.Disabled = *e.Disabled
			}
			if e.Action != policy.ActionUnset {
				p.Action = e.Action
			}
			if e.DropProtect {
				p.Protect = policy.Protect{}
			}
			if e.Protect != "" {
				var pr policy.Protect
				if err := yaml.Unmarshal([]byte(e.Protect), &pr); err != nil {
					return nil, fmt.Errorf("%w: saved protect block: %v", ErrCannotEdit, err)
				}
				p.Protect = pr
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("%w %q in %s", ErrNoSuchPolicy, id, file)
	}
	return policy.Marshal(s)
}

// findPolicyNode is the mapping of policy id under access_policies or
// session_policies.
func findPolicyNode(doc *yaml.Node, id string) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if (k.Value != "access_policies" && k.Value != "session_policies") || v.Kind != yaml.SequenceNode {
			continue
		}
		for _, item := range v.Content {
			if idv := mapValue(item, "id"); idv != nil && idv.Value == id {
				return item
			}
		}
	}
	return nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func mapKey(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return nil
}

// editNode is the fallback: the same edit on the node tree.
func editNode(item *yaml.Node, e policyEdit) error {
	set := func(key, value string) {
		if v := mapValue(item, key); v != nil {
			v.Kind, v.Tag, v.Value, v.Style, v.Content = yaml.ScalarNode, "", value, 0, nil
			return
		}
		item.Content = append(item.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: value})
	}
	del := func(key string) {
		for i := 0; i+1 < len(item.Content); i += 2 {
			if item.Content[i].Value == key {
				item.Content = append(item.Content[:i], item.Content[i+2:]...)
				return
			}
		}
	}
	if e.Disabled != nil {
		if *e.Disabled {
			set("disabled", "true")
		} else {
			del("disabled")
		}
	}
	if e.Action != policy.ActionUnset {
		set("action", e.Action.String())
	}
	if e.DropProtect {
		del("protect")
	}
	if e.Protect != "" {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(e.Protect), &n); err != nil || len(n.Content) == 0 {
			return fmt.Errorf("%w: saved protect block", ErrCannotEdit)
		}
		del("protect")
		item.Content = append(item.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "protect"}, n.Content[0])
	}
	return nil
}

// editInPlace changes the value bytes of existing keys and adds missing
// ones after the id (on a new line in block style, after the id's value
// in flow style). It reports false for shapes it does not handle.
func editInPlace(src []byte, item *yaml.Node, e policyEdit) ([]byte, bool) {
	lines := strings.SplitAfter(string(src), "\n")
	type repl struct {
		line, col, n int // 0-based line, byte column, bytes replaced
		text         string
	}
	var edits []repl
	var inserts []struct {
		afterLine int
		text      string
	}
	flow := item.Style&yaml.FlowStyle != 0
	idKey, idVal := mapKey(item, "id"), mapValue(item, "id")
	if idKey == nil || idVal == nil || idVal.Line != idKey.Line {
		return nil, false
	}
	scalarAt := func(v *yaml.Node) (repl, bool) {
		if v.Kind != yaml.ScalarNode || v.Line < 1 || v.Line > len(lines) {
			return repl{}, false
		}
		l := lines[v.Line-1]
		col := byteCol(l, v.Column)
		if col < 0 {
			return repl{}, false
		}
		n := len(v.Value)
		switch v.Style {
		case 0:
			if !strings.HasPrefix(l[col:], v.Value) {
				return repl{}, false
			}
		case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
			q := l[col]
			end := strings.IndexByte(l[col+1:], q)
			if end < 0 || l[col+1:col+1+end] != v.Value {
				return repl{}, false
			}
			n = end + 2
		default:
			return repl{}, false
		}
		return repl{line: v.Line - 1, col: col, n: n}, true
	}
	setValue := func(key, value string) bool {
		if v := mapValue(item, key); v != nil {
			r, ok := scalarAt(v)
			if !ok {
				return false
			}
			r.text = value
			edits = append(edits, r)
			return true
		}
		if flow {
			r, ok := scalarAt(idVal)
			if !ok {
				return false
			}
			edits = append(edits, repl{line: r.line, col: r.col + r.n, text: ", " + key + ": " + value})
			return true
		}
		indent := strings.Repeat(" ", idKey.Column-1)
		inserts = append(inserts, struct {
			afterLine int
			text      string
		}{idKey.Line - 1, indent + key + ": " + value + "\n"})
		return true
	}
	if e.Disabled != nil {
		v := "false"
		if *e.Disabled {
			v = "true"
		}
		if !*e.Disabled && mapValue(item, "disabled") == nil {
			// already enabled
		} else if !setValue("disabled", v) {
			return nil, false
		}
	}
	if e.Action != policy.ActionUnset && !setValue("action", e.Action.String()) {
		return nil, false
	}
	// Apply replacements right to left so earlier columns stay valid.
	slices.SortFunc(edits, func(a, b repl) int { return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(a.col, b.col)) })
	for i := len(edits) - 1; i >= 0; i-- {
		r := edits[i]
		l := lines[r.line]
		lines[r.line] = l[:r.col] + r.text + l[r.col+r.n:]
	}
	for i := len(inserts) - 1; i >= 0; i-- {
		in := inserts[i]
		if !strings.HasSuffix(lines[in.afterLine], "\n") {
			lines[in.afterLine] += "\n"
		}
		lines = append(lines[:in.afterLine+1], append([]string{in.text}, lines[in.afterLine+1:]...)...)
	}
	return []byte(strings.Join(lines, "")), true
}

// byteCol turns yaml's 1-based column (in characters) into a byte offset.
func byteCol(line string, col int) int {
	n := 0
	for i := range line {
		n++
		if n == col {
			return i
		}
	}
	return -1
}
