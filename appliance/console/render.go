package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// view is what every page template gets.
type view struct {
	Title string
	Nav   string // the current section, for aria-current
	S     *session
	CSRF  string
	Flash string
	Error string
	D     any
}

func (v view) Admin() bool { return v.S != nil && v.S.Role == RoleAdmin }

// pageNames are the templates under assets/templates, each rendered inside
// layout.html.
var pageNames = []string{"login", "setup", "dashboard", "activity", "edit", "revisions", "audit", "account", "users",
	"policylist", "tray", "apps", "devices", "settings"}

var funcs = template.FuncMap{
	"vis":       visible,
	"short":     func(s string, n int) string { return visible(clipRunes(s, n)) },
	"time":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"timeISO":   func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"ago":       ago,
	"bytes":     humanBytes,
	"join":      func(l []string) string { return visible(strings.Join(l, ", ")) },
	"add":       func(a, b int) int { return a + b },
	"actClass":  actionClass,
	"difflines": diffLines,
	"pct": func(a, b int) string {
		if b == 0 {
			return "0"
		}
		return strconv.FormatFloat(100*float64(a)/float64(b), 'f', 1, 64)
	},
}

// pageSet parses each page the first time it is rendered. Parsed, the 14
// pages (each with its own copy of the layout) held 0.62 MiB of the
// appliance's ~3.5 MiB live heap from start-up on, whether or not anyone
// opened the console; TestAllPagesParse keeps a broken template from
// reaching a build.
type pageSet struct {
	mu     sync.Mutex
	parsed map[string]*template.Template
}

// get returns the parsed page name; nil when pageNames has no such page.
func (p *pageSet) get(name string) (*template.Template, error) {
	if !slices.Contains(pageNames, name) {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.parsed[name]; t != nil {
		return t, nil
	}
	t, err := parsePage(name)
	if err != nil {
		return nil, err
	}
	if p.parsed == nil {
		p.parsed = map[string]*template.Template{}
	}
	p.parsed[name] = t
	return t, nil
}

func parsePage(n string) (*template.Template, error) {
	t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/templates/layout.html", "assets/templates/"+n+".html")
	if err != nil {
		return nil, fmt.Errorf("console template %s: %w", n, err)
	}
	return t, nil
}

// render executes a page (or, with name "page#block", one block of it for
// an htmx swap) into a buffer first, so a template error never leaves half
// a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, name string, v view) {
	page, block, _ := strings.Cut(name, "#")
	t, err := c.pages.get(page)
	if err != nil || t == nil {
		c.opt.Log.Error("console render", "page", name, "err", err)
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	v.S = s
	if s != nil {
		v.CSRF = s.CSRF
	}
	if block == "" {
		block = "layout.html"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, block, v); err != nil {
		c.opt.Log.Error("console render", "page", name, "err", err)
		http.Error(w, "page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}

// visible makes control characters and invalid UTF-8 visible (U+2400
// pictures, U+FFFD), so a value from traffic can neither hide text nor
// fake a line break in a table. Escaping for HTML is the template's job.
func visible(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b == 0x7f || b >= 0x80 {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			b.WriteRune('\uFFFD')
		case r < 0x20:
			b.WriteRune(0x2400 + r)
		case r == 0x7f:
			b.WriteRune('\u2421')
		case r >= 0x80 && r < 0xa0, r == 0x2028, r == 0x2029, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			// C1 controls, line separators and bidi overrides.
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " days ago"
}

func humanBytes(n int64) string {
	switch {
	case n < 1024:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/1024, 'f', 1, 64) + " KiB"
	case n < 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
}

// actionClass maps an action to a CSS class; unknown values get none, so
// nothing from an event ever becomes a class name.
func actionClass(a string) string {
	switch a {
	case "allow", "monitor", "protect", "require_step_up", "block", "bypass":
		return "act-" + a
	}
	return "act-other"
}

// searchLinks builds the activity page's URLs from the current search.
type searchLinks struct{ v url.Values }

// With is the current search plus key=value (replacing key), from page 1.
func (l searchLinks) With(key, value string) string {
	v := cloneValues(l.v)
	v.Del("after")
	v.Set(key, value)
	return "/activity?" + v.Encode()
}

// Without is the current search minus key.
func (l searchLinks) Without(key string) string {
	v := cloneValues(l.v)
	v.Del("after")
	v.Del(key)
	return "/activity?" + v.Encode()
}

// Export is the export URL of the current search.
func (l searchLinks) Export(format string) string {
	v := cloneValues(l.v)
	v.Del("after")
	v.Set("format", format)
	return "/activity/export?" + v.Encode()
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

type diffLine struct{ Class, Text string }

// diffLines splits a unified diff for display, one class per kind of line.
func diffLines(d string) []diffLine {
	var out []diffLine
	for _, l := range splitLines(d) {
		c := "ctx"
		switch {
		case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
			c = "hdr"
		case strings.HasPrefix(l, "@@"):
			c = "hunk"
		case strings.HasPrefix(l, "+"):
			c = "add"
		case strings.HasPrefix(l, "-"):
			c = "del"
		}
		out = append(out, diffLine{c, visible(l)})
	}
	return out
}
