package rewrite

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"
)

func FuzzURL(f *testing.F) {
	for _, s := range []string{
		"https://app.example.com/a?b#c", "//cdn.example.net", "HTTP://User@App.Example.com:8080/x",
		"wss://contoso.sharepoint.com./s", "https://app.example.com.gw.test/", "https:\\\\login.example.com",
		"ftp://app.example.com", "/rel", "https://[::1]:80/", "https://a@b@app.example.com:1?x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		m := newTestMapper()
		out, ok := URLToSuffix(raw, m)
		if !ok {
			if out != raw {
				t.Fatalf("refused URL changed: %q -> %q", raw, out)
			}
		} else {
			hs, he, _ := urlHostSpan(raw)
			ohs, ohe, ok2 := urlHostSpan(out)
			if !ok2 || out[:ohs] != raw[:hs] || out[ohe:] != raw[he:] {
				t.Fatalf("bytes outside the host changed: %q -> %q", raw, out)
			}
			if !m.returned[out[ohs:ohe]] {
				t.Fatalf("host %q was not returned by the Mapper", out[ohs:ohe])
			}
			back, ok := URLToOrigin(out, m)
			norm, _ := normalHost(raw[hs:he])
			if want := raw[:hs] + norm + raw[he:]; !ok || back != want {
				t.Fatalf("round trip %q -> %q -> %q, want %q", raw, out, back, want)
			}
		}
		if o, ok := URLToOrigin(raw, m); ok {
			hs, he, _ := urlHostSpan(o)
			if !m.returned[o[hs:he]] {
				t.Fatalf("origin host %q was not returned by the Mapper", o[hs:he])
			}
		}
	})
}

func FuzzSetCookie(f *testing.F) {
	for _, s := range []string{
		"sid=1; Domain=example.com; Path=/", "__Host-a=1; Secure; Path=/", "a=b; domain=gw.test",
		"a=b; Domain=app.example.com.gw.test", "__Secure-x=1; Secure; Domain=.sharepoint.com",
		"a=b; Domain=example.com; domain=evil.org", "x=y;;;Secure;Domain",
	} {
		f.Add(s, uint8(0))
	}
	origins := []string{"app.example.com", "login.example.com", "contoso.sharepoint.com"}
	f.Fuzz(func(t *testing.T, line string, which uint8) {
		origin := origins[int(which)%len(origins)]
		sfx := origin + "." + testSuffix
		out, ok := SetCookie(line, origin, sfx)
		if !ok {
			return
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < ' ' && c != '\t' || c == 0x7f {
				t.Fatalf("control byte in output %q", out)
			}
		}
		parts := strings.Split(out, ";")
		name, _, _ := strings.Cut(parts[0], "=")
		secure, path := false, ""
		for _, p := range parts[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "domain":
				d := strings.ToLower(strings.Trim(strings.TrimSpace(v), "."))
				if d != "" && d != sfx {
					t.Fatalf("Domain=%q reaches beyond %s: %q", d, sfx, out)
				}
			case "secure":
				secure = true
			case "path":
				path = strings.TrimSpace(v)
			}
		}
		ln := strings.ToLower(strings.TrimSpace(name))
		if strings.HasPrefix(ln, "__host-") && (!secure || path != "/") {
			t.Fatalf("__Host- rules broken: %q", out)
		}
		if strings.HasPrefix(ln, "__secure-") && !secure {
			t.Fatalf("__Secure- without Secure: %q", out)
		}
	})
}

var (
	scriptOpen = regexp.MustCompile(`(?i)<script`)
	onAttr     = regexp.MustCompile(`(?i)[\s/"']on[a-z]+\s*=`)
	mappedDot  = regexp.MustCompile(`(?i)(example\.com|example\.net|sharepoint\.com)\.[^g]`)
)

func FuzzHTML(f *testing.F) {
	for _, c := range htmlGolden {
		f.Add(c.in, uint16(len(c.in)/2), false)
	}
	f.Add(benchPage(2<<10), uint16(700), true)
	f.Add(`<head><script src="//cdn.example.net/x" integrity=y></script>`, uint16(9), true)
	f.Fuzz(func(t *testing.T, doc string, cut uint16, inject bool) {
		if got := rewriteHTML(t, doc, noMapper{}, BodyOptions{}); got != doc {
			t.Fatalf("changed without any mapping:\n in %q\nout %q", doc, got)
		}
		m := newTestMapper()
		o := BodyOptions{}
		if inject {
			o = BodyOptions{Nonce: "fz", Inject: []byte("pc()")}
		}
		out := rewriteHTML(t, doc, m, o)
		k := 0
		if len(doc) > 0 {
			k = int(cut) % (len(doc) + 1)
		}
		if split := rewriteHTMLSplit(t, doc, k, m, o); split != out {
			t.Fatalf("split at %d differs:\n one %q\nsplit %q", k, out, split)
		}
		rest := out
		if inject {
			const el = `<script nonce="fz">pc()</script>`
			if strings.Count(out, el) != strings.Count(doc, el)+1 {
				t.Fatalf("injected script not there exactly once: %q", out)
			}
			i := strings.Index(out, el)
			rest = out[:i] + out[i+len(el):]
		}
		if a, b := len(scriptOpen.FindAllStringIndex(doc, -1)), len(scriptOpen.FindAllStringIndex(rest, -1)); b != a {
			t.Fatalf("<script count %d -> %d:\n in %q\nout %q", a, b, doc, out)
		}
		if a, b := len(onAttr.FindAllStringIndex(doc, -1)), len(onAttr.FindAllStringIndex(rest, -1)); b != a {
			t.Fatalf("on*= count %d -> %d:\n in %q\nout %q", a, b, doc, out)
		}
		if inject || strings.ContainsAny(doc, "&") || strings.Contains(strings.ToLower(doc), "integrity") || mappedDot.MatchString(doc) {
			return
		}
		// Without entities, SRI or trailing-dot hosts, the only change is
		// ".gw.test" after mapped hosts (which may be lower-cased).
		if !strings.EqualFold(strings.ReplaceAll(out, "."+testSuffix, ""), strings.ReplaceAll(doc, "."+testSuffix, "")) {
			t.Fatalf("changed beyond hosts:\n in %q\nout %q", doc, out)
		}
	})
}

func FuzzText(f *testing.F) {
	for _, c := range textGolden {
		f.Add(c.in, uint16(3), false)
	}
	for _, c := range cssGolden {
		f.Add(c.in, uint16(5), true)
	}
	f.Fuzz(func(t *testing.T, doc string, cut uint16, css bool) {
		m := newTestMapper()
		mk := func(w io.Writer, m Mapper) io.WriteCloser {
			if css {
				return NewCSS(w, m)
			}
			return NewText(w, m)
		}
		var b0 bytes.Buffer
		if got := runWriter(t, mk(&b0, noMapper{}), &b0, doc); got != doc {
			t.Fatalf("changed without any mapping: %q -> %q", doc, got)
		}
		var b1, b2 bytes.Buffer
		one := runWriter(t, mk(&b1, m), &b1, doc)
		k := int(cut) % (len(doc) + 1)
		if split := runWriter(t, mk(&b2, m), &b2, doc[:k], doc[k:]); split != one {
			t.Fatalf("split at %d differs: %q vs %q", k, one, split)
		}
		if !strings.EqualFold(strings.ReplaceAll(one, "."+testSuffix, ""), strings.ReplaceAll(doc, "."+testSuffix, "")) {
			t.Fatalf("changed beyond hosts:\n in %q\nout %q", doc, one)
		}
	})
}

func FuzzCSP(f *testing.F) {
	for _, c := range []string{
		"default-src 'self' https://cdn.example.net; img-src *", "script-src 'unsafe-inline'",
		"script-src 'strict-dynamic' 'sha256-x'", "frame-src https://*.sharepoint.com; report-uri //app.example.com/r",
		"a, b; c", ";;;", "SCRIPT-SRC app.example.com:*/x/", "default-src 'none', script-src-elem cdn.example.net",
	} {
		f.Add(c, true)
	}
	f.Fuzz(func(t *testing.T, in string, withNonce bool) {
		nonce := ""
		if withNonce {
			nonce = "n0"
		}
		out := CSP(in, newTestMapper(), nonce)
		ip, op := strings.Split(in, ","), strings.Split(out, ",")
		if len(ip) != len(op) {
			t.Fatalf("policy count changed: %q -> %q", in, out)
		}
		for i := range ip {
			id, od := strings.Split(ip[i], ";"), strings.Split(op[i], ";")
			if len(id) != len(od) {
				t.Fatalf("directive count changed: %q -> %q", in, out)
			}
			for j := range id {
				it, ot := strings.Fields(id[j]), strings.Fields(od[j])
				if len(it) > 0 && (len(ot) == 0 || !strings.EqualFold(it[0], ot[0])) {
					t.Fatalf("directive %q lost or renamed: %q -> %q", it[0], in, out)
				}
				had := map[string]bool{}
				for _, tok := range it {
					had[strings.ToLower(tok)] = true
				}
				if len(ot) < len(it) {
					t.Fatalf("sources removed: %q -> %q", id[j], od[j])
				}
				for _, tok := range ot {
					lt := strings.ToLower(tok)
					if had[lt] {
						continue
					}
					switch {
					case lt == "*" || strings.HasPrefix(lt, "'unsafe-") || strings.HasSuffix(lt, ":") && !strings.Contains(lt, "."):
						t.Fatalf("widening token %q added: %q -> %q", tok, in, out)
					case lt == "'nonce-n0'" && withNonce:
					case strings.Contains(lt, "."+testSuffix):
					default:
						t.Fatalf("unexpected new token %q: %q -> %q", tok, in, out)
					}
				}
			}
		}
	})
}

// FuzzTagScanners: the oversized-tag follower ends a tag exactly where the
// tag parser does.
func FuzzTagScanners(f *testing.F) {
	for _, s := range []string{` href="a>b" c=d>`, ` ="x" y>`, `/ a= 'b' / >`, ` a b = c>d`, ` x=">`, `>`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		b := []byte("<a" + rest)
		w := &HTMLWriter{}
		n, _, ok := w.parseTag(b)
		var st uint8
		end := skipTag(&st, b[1:])
		if ok != (end >= 0) || ok && n != end+1 {
			t.Fatalf("parseTag (%d, %v) and skipTag (%d) disagree on %q", n, ok, end, b)
		}
	})
}
