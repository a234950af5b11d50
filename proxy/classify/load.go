package classify

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/policy"
)

// maxDataFile bounds what Load reads: the shipped file is a few kilobytes,
// and a replacement an admin points at must not exhaust memory.
const maxDataFile = 4 << 20

// maxDataErrors bounds the problems Load reports at once.
const maxDataErrors = 20

// dataFormat is the only format version Load accepts.
const dataFormat = 1

//go:embed clients.yaml
var embeddedData []byte

var defaultClassifier = sync.OnceValue(func() *Classifier {
	c, err := Load(bytes.NewReader(embeddedData))
	if err != nil {
		// A build defect, not a runtime condition: TestDefaultLoads keeps
		// the shipped file valid.
		panic("classify: embedded clients.yaml: " + err.Error())
	}
	return c
})

// Default returns the classifier built from the data file shipped in the
// package (clients.yaml), parsed once.
func Default() *Classifier { return defaultClassifier() }

// LoadFile is Load of a file, with the file's name before every line:column.
func LoadFile(path string) (*Classifier, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := Load(f)
	if err != nil {
		return nil, prefixErrors(path, err)
	}
	return c, nil
}

// prefixErrors puts "path:" before each joined DataError, keeping them
// matchable with errors.Is/As.
func prefixErrors(path string, err error) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("%s:%w", path, e)
	}
	return errors.Join(out...)
}

// Load parses a data file (YAML; JSON is YAML too) into a classifier. It is
// strict: an unknown key, a family not declared in families, a malformed or
// repeated fingerprint, an empty source, or a threshold for a product or
// system the User-Agent parser never reports is an error, reported with its
// line and column (DataError, matching ErrInvalidData). Nothing is shared
// with an earlier classifier, so the caller swaps the result in atomically.
func Load(r io.Reader) (*Classifier, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxDataFile+1))
	if err != nil {
		return nil, fmt.Errorf("read client classification data: %w", err)
	}
	if len(data) > maxDataFile {
		return nil, &DataError{Msg: fmt.Sprintf("data file larger than %d bytes", maxDataFile)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &DataError{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	l := &loader{c: newClassifier()}
	l.document(&doc)
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return l.c, nil
}

type loader struct {
	c    *Classifier
	errs []error
	// seen remembers where each fingerprint was first listed.
	seen map[string]int
}

func (l *loader) fail(n *yaml.Node, format string, args ...any) {
	if len(l.errs) == maxDataErrors {
		l.errs = append(l.errs, &DataError{Msg: "too many errors; stopped"})
	}
	if len(l.errs) > maxDataErrors {
		return
	}
	e := &DataError{Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

// fields walks a mapping, calling fn for each known key and failing on
// unknown or repeated ones; it returns the keys present.
func (l *loader) fields(n *yaml.Node, where string, known []string, fn func(key string, k, v *yaml.Node)) map[string]bool {
	present := map[string]bool{}
	if n.Kind != yaml.MappingNode {
		l.fail(n, "%s: want a mapping", where)
		return present
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case !slices.Contains(known, k.Value):
			l.fail(k, "%s: unknown key %q (known: %s)", where, k.Value, strings.Join(known, ", "))
		case present[k.Value]:
			l.fail(k, "%s: key %q repeated", where, k.Value)
		default:
			present[k.Value] = true
			fn(k.Value, k, v)
		}
	}
	return present
}

func (l *loader) require(n *yaml.Node, where string, present map[string]bool, keys ...string) {
	for _, k := range keys {
		if !present[k] {
			l.fail(n, "%s: missing key %q", where, k)
		}
	}
}

func (l *loader) scalar(n *yaml.Node, where string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		l.fail(n, "%s: want a single value", where)
		return "", false
	}
	return n.Value, true
}

func (l *loader) document(doc *yaml.Node) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		l.fail(nil, "empty data file")
		return
	}
	root := doc.Content[0]
	var famNode, fpNode *yaml.Node
	present := l.fields(root, "data file", []string{"format", "families", "fingerprints", "outdated_browsers", "outdated_os"},
		func(key string, _, v *yaml.Node) {
			switch key {
			case "format":
				if s, ok := l.scalar(v, "format"); ok && s != strconv.Itoa(dataFormat) {
					l.fail(v, "format %q: this version reads format %d", s, dataFormat)
				}
			case "families":
				famNode = v
			case "fingerprints":
				fpNode = v
			case "outdated_browsers":
				l.outdatedBrowsers(v)
			case "outdated_os":
				l.outdatedOS(v)
			}
		})
	l.require(root, "data file", present, "format", "families", "fingerprints")
	// Families first, wherever they are written: fingerprints refer to them.
	if famNode != nil {
		l.families(famNode)
	}
	if fpNode != nil {
		l.fingerprints(fpNode)
	}
}

func (l *loader) families(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		l.fail(n, "families: want a mapping of family name to browser or mobile_desktop")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		switch {
		case !validFamilyName(name):
			l.fail(k, "families: name %q: want lowercase letters, digits and '-'", name)
			continue
		case name == FamilyUnknown:
			l.fail(k, "families: %q is what an unmatched client is called; it cannot be declared", name)
			continue
		case l.c.families[name] != nil:
			l.fail(k, "families: %q repeated", name)
			continue
		}
		s, ok := l.scalar(v, "families."+name)
		if !ok {
			continue
		}
		var client policy.ClientApp
		switch s {
		case "browser":
			client = policy.ClientBrowser
		case "mobile_desktop":
			client = policy.ClientMobileDesktop
		default:
			l.fail(v, "families.%s: %q: want browser or mobile_desktop", name, s)
			continue
		}
		l.c.families[name] = &family{name: name, client: client}
	}
}

func validFamilyName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || isDigit(c) || c == '-') {
			return false
		}
	}
	return true
}

func (l *loader) fingerprints(n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		l.fail(n, "fingerprints: want a list")
		return
	}
	l.seen = map[string]int{}
	for i, item := range n.Content {
		where := fmt.Sprintf("fingerprints[%d]", i)
		f := &fingerprint{}
		var ja4Node *yaml.Node
		present := l.fields(item, where, []string{"ja4", "family", "source"}, func(key string, _, v *yaml.Node) {
			s, ok := l.scalar(v, where+"."+key)
			if !ok {
				return
			}
			switch key {
			case "ja4":
				ja4Node = v
				kind, problem := parseEntryJA4(s)
				if problem != "" {
					l.fail(v, "%s.ja4 %q: %s", where, s, problem)
					return
				}
				f.ja4, f.kind = s, kind
			case "family":
				if f.family = l.c.families[s]; f.family == nil {
					l.fail(v, "%s.family %q: not declared in families", where, s)
				}
			case "source":
				if strings.TrimSpace(s) == "" {
					l.fail(v, "%s.source: empty; say where the fingerprint comes from", where)
				}
				f.source = strings.TrimSpace(s)
			}
		})
		l.require(item, where, present, "ja4", "family", "source")
		if f.ja4 == "" || f.family == nil || f.source == "" {
			continue
		}
		if first, dup := l.seen[f.ja4]; dup {
			l.fail(ja4Node, "%s.ja4 %s: already listed at line %d", where, f.ja4, first)
			continue
		}
		l.seen[f.ja4] = ja4Node.Line
		l.c.add(f)
	}
}

func (l *loader) outdatedBrowsers(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		l.fail(n, "outdated_browsers: want a mapping of browser product to the lowest major version not outdated")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		product := k.Value
		switch {
		case !slices.Contains(browserProducts, product):
			l.fail(k, "outdated_browsers: product %q is never reported by the User-Agent parser (known: %s)", product, strings.Join(browserProducts, ", "))
			continue
		case l.c.browserMin[product] != 0:
			l.fail(k, "outdated_browsers: %q repeated", product)
			continue
		}
		s, ok := l.scalar(v, "outdated_browsers."+product)
		if !ok {
			continue
		}
		major, err := strconv.Atoi(s)
		if err != nil || major <= 0 || major > 100000 {
			l.fail(v, "outdated_browsers.%s: %q: want a major version number", product, s)
			continue
		}
		l.c.browserMin[product] = major
	}
}

func (l *loader) outdatedOS(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		l.fail(n, "outdated_os: want a mapping of system to {below, frozen}")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		switch {
		case !slices.Contains(osNames, name):
			l.fail(k, "outdated_os: system %q is never reported by the User-Agent parser (known: %s)", name, strings.Join(osNames, ", "))
			continue
		case l.c.osRules[name] != nil:
			l.fail(k, "outdated_os: %q repeated", name)
			continue
		}
		where := "outdated_os." + name
		rule := &osRule{}
		present := l.fields(v, where, []string{"below", "frozen"}, func(key string, _, v *yaml.Node) {
			switch key {
			case "below":
				if s, ok := l.scalar(v, where+".below"); ok {
					ver, ok := parseStrictVersion(s)
					if !ok {
						l.fail(v, "%s.below: %q: want a version such as 10, 10.0 or 10.15.7", where, s)
					}
					rule.below = ver
				}
			case "frozen":
				if v.Kind != yaml.SequenceNode {
					l.fail(v, "%s.frozen: want a list of versions", where)
					return
				}
				for _, item := range v.Content {
					s, ok := l.scalar(item, where+".frozen")
					if !ok {
						continue
					}
					ver, ok := parseStrictVersion(s)
					if !ok {
						l.fail(item, "%s.frozen: %q: want a version such as 10 or 10.15.7", where, s)
						continue
					}
					rule.frozen = append(rule.frozen, ver)
				}
			}
		})
		l.require(v, where, present, "below")
		l.c.osRules[name] = rule
	}
}

// parseStrictVersion accepts 1 to 3 dot-separated numbers and nothing else.
func parseStrictVersion(s string) (Version, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return Version{}, false
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999999 || p == "" || p[0] == '+' {
			return Version{}, false
		}
		v[i] = n
	}
	return Version{v[0], v[1], v[2]}, true
}
