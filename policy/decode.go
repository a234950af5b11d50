package policy

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder turns a yaml.Node tree into the model strictly: unknown keys,
// duplicate keys, wrong kinds and anchors are errors with the node's
// position. yaml.v3's own Decode with KnownFields reports only a line and no
// hint, which is not enough for `policy check`.
type decoder struct {
	file string
	errs *errs
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	posType             = reflect.TypeFor[Pos]()
	namesType           = reflect.TypeFor[Names]()
)

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a node"
}

// decode fills v (addressable) from n.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, what string) {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.errs.add(d.pos(n), ErrBadValue, "write the value out in full; anchors and aliases are not supported in policy files",
			"%s uses a YAML anchor or alias", what)
		return
	}
	if v.Type() == namesType {
		d.decodeNames(n, v.Addr().Interface().(*Names), what)
		return
	}
	if reflect.PointerTo(v.Type()).Implements(textUnmarshalerType) {
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			d.errs.add(d.pos(n), ErrBadValue, "write a single value", "%s must be a single value, not %s", what, kindName(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			hint := "see the policy reference for valid values"
			var ee *enumErr
			if errors.As(err, &ee) {
				hint = "use one of: " + strings.Join(ee.valid, ", ")
				if s := closest(ee.got, ee.valid); s != "" {
					hint = fmt.Sprintf("did you mean %q? valid: %s", s, strings.Join(ee.valid, ", "))
				}
			}
			d.errs.add(d.pos(n), ErrBadValue, hint, "%s: %v", what, err)
		}
		return
	}
	switch v.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			d.errs.add(d.pos(n), ErrBadValue, "write a string (quote it if it looks like something else)", "%s must be a string, not %s", what, kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.errs.add(d.pos(n), ErrBadValue, "write true or false", "%s must be true or false", what)
			return
		}
		b, err := strconv.ParseBool(strings.ToLower(n.Value))
		if err != nil {
			d.errs.add(d.pos(n), ErrBadValue, "write true or false", "%s must be true or false", what)
			return
		}
		v.SetBool(b)
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			d.errs.add(d.pos(n), ErrBadValue, "write a whole number", "%s must be a whole number", what)
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 32)
		if err != nil {
			d.errs.add(d.pos(n), ErrBadValue, "write a whole number below 2147483648", "%s: %q is not a usable number", what, n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errs.add(d.pos(n), ErrBadValue, "write a list: [a, b] or one \"- item\" per line", "%s must be a list, not %s", what, kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", what, i+1))
		}
		v.Set(s)
	case reflect.Pointer:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), what)
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, v, what)
	default:
		d.errs.add(d.pos(n), ErrBadValue, "", "%s: unsupported type %s", what, v.Type())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, what string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		if f := v.FieldByName("At"); f.IsValid() && f.Type() == posType {
			f.Set(reflect.ValueOf(d.pos(n)))
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		label := what
		if label == "" {
			label = "the policy file"
		}
		d.errs.add(d.pos(n), ErrBadValue, "write key: value pairs here", "%s must be a mapping, not %s", label, kindName(n))
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type == posType && f.Name == "At" {
			v.Field(i).Set(reflect.ValueOf(d.pos(n)))
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fields[name] = i
		keys = append(keys, name)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errs.add(d.pos(k), ErrBadValue, "keys are plain words like id or action", "%s: a key must be a plain word, not %s", what, kindName(k))
			continue
		}
		if k.Value == "<<" {
			d.errs.add(d.pos(k), ErrBadValue, "write the keys out; merge keys are not supported in policy files", "%s uses a YAML merge key", what)
			continue
		}
		idx, ok := fields[k.Value]
		if !ok {
			hint := "valid keys here: " + strings.Join(sortedCopy(keys), ", ")
			if s := closest(k.Value, keys); s != "" {
				hint = fmt.Sprintf("did you mean %q?", s)
			}
			where := what
			if where == "" {
				where = "the policy file"
			}
			d.errs.add(d.pos(k), ErrUnknownKey, hint, "unknown key %q in %s", k.Value, where)
			continue
		}
		if seen[k.Value] {
			d.errs.add(d.pos(k), ErrDuplicate, "delete one of the two", "key %q appears twice in %s", k.Value, what)
			continue
		}
		seen[k.Value] = true
		d.decode(val, v.Field(idx), join(what, k.Value))
	}
}

// decodeNames accepts a plain list (any_of) or {any_of, none_of}.
func (d *decoder) decodeNames(n *yaml.Node, out *Names, what string) {
	out.At = d.pos(n)
	list := func(n *yaml.Node, dst *[]string, at *[]Pos, what string) {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errs.add(d.pos(n), ErrBadValue, "write a list: [a, b]", "%s must be a list, not %s", what, kindName(n))
			return
		}
		for i, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" || c.Anchor != "" {
				d.errs.add(d.pos(c), ErrBadValue, "write a plain name", "%s[%d] must be a name, not %s", what, i+1, kindName(c))
				continue
			}
			*dst = append(*dst, c.Value)
			*at = append(*at, d.pos(c))
		}
	}
	switch n.Kind {
	case yaml.SequenceNode, yaml.ScalarNode:
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			d.errs.add(d.pos(n), ErrBadValue, fmt.Sprintf("write a list: [%s]", n.Value), "%s must be a list, not a single value", what)
			return
		}
		list(n, &out.AnyOf, &out.anyAt, what)
	case yaml.MappingNode:
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if seen[k.Value] {
				d.errs.add(d.pos(k), ErrDuplicate, "delete one of the two", "key %q appears twice in %s", k.Value, what)
				continue
			}
			seen[k.Value] = true
			switch k.Value {
			case "any_of":
				list(val, &out.AnyOf, &out.anyAt, what+".any_of")
			case "none_of":
				list(val, &out.NoneOf, &out.noneAt, what+".none_of")
			default:
				hint := "a filter is a list, or a mapping with any_of and none_of"
				if s := closest(k.Value, []string{"any_of", "none_of"}); s != "" {
					hint = fmt.Sprintf("did you mean %q?", s)
				}
				d.errs.add(d.pos(k), ErrUnknownKey, hint, "unknown key %q in %s", k.Value, what)
			}
		}
	default:
		d.errs.add(d.pos(n), ErrBadValue, "write a list: [a, b]", "%s must be a list", what)
	}
}

// join builds the dotted path of a key for messages; the file itself is
// the empty path.
func join(what, key string) string {
	if what == "" {
		return key
	}
	return what + "." + key
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// closest returns the candidate within edit distance 2 of s (the typical
// typo), or "" when none is that close.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
