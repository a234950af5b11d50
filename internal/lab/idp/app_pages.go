package idp

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// appIdentity is who the app's login says the user is.
type appIdentity struct {
	Name   string
	Groups []string
}

// appPages serves the pages both SSO apps show once the user is signed in.
// They exercise what the proxy must rewrite: absolute and relative links,
// an image, a script that fetch()es JSON holding absolute URLs, a form POST,
// a cookie, a download and a WebSocket. Absolute URLs come from base (the
// configured host name), never from the Host header.
type appPages struct {
	base     string // "https://sp.lab", no trailing slash
	title    string
	identity func(*http.Request) appIdentity
	logout   string // path of the logout handler
	upgrader websocket.Upgrader
}

const appPrefCookie = "lab_app_pref"

var appHomeTemplate = template.Must(template.New("home").Parse(`<!doctype html>
<html><head><title>{{.Title}}</title><script src="/static/app.js" defer></script></head><body>
<h1 id="hello">Hello {{.User.Name}}</h1>
<p>Groups: <span id="groups">{{range $i, $g := .User.Groups}}{{if $i}}, {{end}}{{$g}}{{end}}</span></p>
<p><img id="logo" src="/static/logo.svg" alt="logo" width="32" height="32"></p>
<ul>
<li><a id="abs-link" href="{{.Base}}/page?from=absolute">absolute link</a></li>
<li><a id="rel-link" href="page?from=relative">relative link</a></li>
<li><a id="download" href="{{.Base}}/files/report.csv">report.csv</a></li>
<li><a id="logout" href="{{.Logout}}">Sign out</a></li>
</ul>
<form id="note-form" method="post" action="{{.Base}}/submit">
<input id="note" name="note" value=""><button id="send" type="submit">Send</button>
</form>
<pre id="api">loading…</pre>
<pre id="ws">connecting…</pre>
</body></html>`))

var appPageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><title>{{.Title}} page</title></head><body>
<h1 id="page">Page for {{.User.Name}}</h1><p id="from">{{.From}}</p><p id="pref">{{.Pref}}</p>
<a id="home" href="{{.Base}}/">home</a></body></html>`))

// appScript fetches the JSON API and talks to the echo WebSocket, showing
// both results in the page so a browser test can read them.
const appScript = `(async () => {
  const api = document.getElementById("api");
  try {
    const r = await fetch("/api/data", {credentials: "same-origin"});
    const j = await r.json();
    api.textContent = "user=" + j.user + " next=" + j.links.page;
    api.dataset.ok = "1";
  } catch (e) { api.textContent = "api error: " + e; }
  const out = document.getElementById("ws");
  try {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + "/ws");
    ws.onopen = () => ws.send("ping");
    ws.onmessage = (m) => { out.textContent = "echo:" + m.data; out.dataset.ok = "1"; ws.close(); };
    ws.onerror = () => { out.textContent = "ws error"; };
  } catch (e) { out.textContent = "ws error: " + e; }
})();
`

const appLogo = `<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="32" height="32" fill="#246"/></svg>`

// reportCSV is the download's body.
const reportCSV = "account,amount\nalpha,100\nbeta,250\n"

func newAppPages(base, title, logout string, identity func(*http.Request) appIdentity) *appPages {
	p := &appPages{base: strings.TrimSuffix(base, "/"), title: title, identity: identity, logout: logout}
	p.upgrader = websocket.Upgrader{CheckOrigin: p.sameOrigin, HandshakeTimeout: 10 * time.Second}
	return p
}

// sameOrigin accepts WebSocket handshakes from the app's own origin, as the
// configured base or as the Host the request came to (behind the suffix
// proxy the browser's origin is the proxy's host name).
func (p *appPages) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return origin == p.base || strings.EqualFold(u.Host, r.Host)
}

// register adds the signed-in routes to mux, each wrapped by requireLogin.
func (p *appPages) register(mux *http.ServeMux, requireLogin func(http.Handler) http.Handler) {
	h := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, requireLogin(f)) }
	h("GET /{$}", p.home)
	h("GET /page", p.page)
	h("POST /submit", p.submit)
	h("GET /api/data", p.api)
	h("GET /files/report.csv", p.download)
	h("GET /ws", p.websocket)
	mux.HandleFunc("GET /static/app.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write([]byte(appScript))
	})
	mux.HandleFunc("GET /static/logo.svg", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		_, _ = w.Write([]byte(appLogo))
	})
	mux.HandleFunc("GET /logged-out", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>Signed out</title><p id="signed-out">You are signed out.</p><a id="again" href="/">Sign in again</a>`))
	})
}

type pageData struct {
	Title, Base, Logout, From, Pref string
	User                            appIdentity
}

func (p *appPages) data(r *http.Request) pageData {
	d := pageData{Title: p.title, Base: p.base, Logout: p.logout, User: p.identity(r)}
	if c, err := r.Cookie(appPrefCookie); err == nil {
		d.Pref = c.Value
	}
	return d
}

func (p *appPages) home(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: appPrefCookie, Value: "blue", Path: "/", Secure: true, SameSite: http.SameSiteLaxMode})
	writeHTML(w, appHomeTemplate, p.data(r))
}

func (p *appPages) page(w http.ResponseWriter, r *http.Request) {
	d := p.data(r)
	d.From = r.URL.Query().Get("from")
	writeHTML(w, appPageTemplate, d)
}

func (p *appPages) submit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "lab app: malformed form", http.StatusBadRequest)
		return
	}
	d := p.data(r)
	d.From = "Received: " + r.PostForm.Get("note")
	writeHTML(w, appPageTemplate, d)
}

func (p *appPages) api(w http.ResponseWriter, r *http.Request) {
	id := p.identity(r)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"user":   id.Name,
		"groups": id.Groups,
		"links": map[string]string{
			"self":     p.base + "/api/data",
			"page":     p.base + "/page?from=api",
			"download": p.base + "/files/report.csv",
		},
	})
}

func (p *appPages) download(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/csv")
	w.Header().Set("Content-Disposition", `attachment; filename="report.csv"`)
	_, _ = w.Write([]byte(reportCSV))
}

// websocket echoes text messages until the client closes, for at most a
// minute.
func (p *appPages) websocket(w http.ResponseWriter, r *http.Request) {
	conn, err := p.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the client
	}
	defer conn.Close()
	deadline := time.Now().Add(time.Minute)
	_ = conn.SetReadDeadline(deadline)
	_ = conn.SetWriteDeadline(deadline)
	conn.SetReadLimit(64 << 10)
	for {
		kind, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if err := conn.WriteMessage(kind, msg); err != nil {
			return
		}
	}
}

func writeHTML(w http.ResponseWriter, t *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = t.Execute(w, data)
}
