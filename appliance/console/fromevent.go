package console

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// policyFromEvent drafts a policy that matches events like e: the same
// app, user, client kind and activity. It is a start for the editor, not
// a decision: the action is monitor, so saving it unchanged only records,
// and the admin narrows or widens it, runs the dry run, then saves.
//
// An event with an activity (download, upload, a catalog activity, an
// in-page action) gives a session policy; a plain request gives an access
// policy on the app. A host that belongs to no app gets a custom app with
// that one host, since policies name apps, not hosts.
func policyFromEvent(e *activity.Event) (file, content string) {
	var b strings.Builder
	id := "from-event-" + strconv.FormatInt(e.Seq, 10)
	fmt.Fprintf(&b, "# Drafted from event %d (%s, %s %s%s).\n", e.Seq, e.Time.UTC().Format("2006-01-02 15:04:05Z"),
		oneLine(e.Method), oneLine(e.Host), oneLine(clipRunes(e.Path, 80)))
	b.WriteString("# The action is monitor: run the dry run, then change it to block when it\n")
	b.WriteString("# catches what you meant. Remove a filter to widen the policy.\n")
	app := e.App
	if app == "" {
		host := draftHost(e.Host)
		if host == "" {
			// Nothing names what the event reached: the draft still parses
			// and the admin fills the app in.
			app = "my-app"
			b.WriteString("# The event names no app or host: set the app.\n")
		} else {
			app = "custom-" + idPart(host)
			b.WriteString("apps:\n")
			fmt.Fprintf(&b, "  - id: %s\n    domains: [%s]\n", app, yamlScalar(host))
		}
	}
	filters := []string{"apps: [" + yamlScalar(app) + "]"}
	if e.User != "" {
		filters = append(filters, "users: ["+yamlScalar(e.User)+"]")
	}
	switch e.ClientApp {
	case "browser", "mobile_desktop":
		filters = append(filters, "client_apps: ["+e.ClientApp+"]")
	}
	control, activities := sessionControlOf(e.Activity)
	if control == "" {
		b.WriteString("access_policies:\n")
		fmt.Fprintf(&b, "  - id: %s\n    filters:\n", id)
		for _, f := range filters {
			fmt.Fprintf(&b, "      %s\n", f)
		}
		b.WriteString("    action: monitor\n")
		return id + ".yaml", b.String()
	}
	b.WriteString("session_policies:\n")
	fmt.Fprintf(&b, "  - id: %s\n    filters:\n", id)
	for _, f := range filters {
		fmt.Fprintf(&b, "      %s\n", f)
	}
	fmt.Fprintf(&b, "    control: %s\n", control)
	if activities != "" {
		fmt.Fprintf(&b, "    activities: [%s]\n", yamlScalar(activities))
	}
	if ext := strings.TrimPrefix(strings.ToLower(path.Ext(e.FileName)), "."); (control == "download" || control == "upload") && extPattern.MatchString(ext) {
		fmt.Fprintf(&b, "    files: {extensions: [%s]}\n", ext)
	}
	b.WriteString("    action: monitor\n")
	return id + ".yaml", b.String()
}

var extPattern = regexp.MustCompile(`^[a-z0-9]{1,10}$`)

// sessionControlOf maps an event's activity to the control that watches
// it: files have their own controls, everything else is an activity a
// block_activities policy lists.
func sessionControlOf(activity string) (control, activities string) {
	switch activity {
	case "":
		return "", ""
	case "download", "upload":
		return activity, ""
	}
	if !idPattern.MatchString(activity) {
		return "", ""
	}
	return "block_activities", activity
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// draftHost is the event's host if it is a plain DNS name (no port, no IP
// literal), lower case; otherwise empty.
func draftHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	if h == "" || len(h) > 253 || net.ParseIP(h) != nil || !hostPattern.MatchString(h) {
		return ""
	}
	return h
}

var hostPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)

// idPart makes a host usable in a policy id.
func idPart(host string) string {
	s := strings.ReplaceAll(host, ".", "-")
	if len(s) > 50 {
		s = s[:50]
	}
	return strings.Trim(s, "-")
}

// yamlScalar quotes s as YAML would need it, so a user name or host from
// traffic can never become YAML structure.
// (a double-quoted YAML scalar takes Go's escapes).
func yamlScalar(s string) string {
	switch strings.ToLower(s) {
	case "true", "false", "null", "yes", "no", "on", "off", "y", "n":
		return strconv.Quote(s)
	}
	if plainScalar.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}

var plainScalar = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]*$`)

// oneLine keeps a traffic value inside its comment line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029 || r == 0x85 {
			return ' '
		}
		return r
	}, visible(s))
}

// policyFromEventPage opens the editor on a new file holding the draft
// policy for one event (GET /policies/from-event?event=ts:seq).
func (c *Console) policyFromEventPage(w http.ResponseWriter, r *http.Request, s *session) {
	ts, seq, err := parseEventRef(r.URL.Query().Get("event"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e, err := c.findEvent(ts, seq)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	file, content := policyFromEvent(e)
	c.render(w, r, s, "edit", view{Title: "New policy from event " + strconv.FormatInt(seq, 10), Nav: "policies",
		Flash: "A draft policy for events like " + strconv.FormatInt(seq, 10) + ": check it, run the dry run, then save.",
		D:     editView{File: file, New: true, Content: content, Dir: c.opt.PolicyDir}})
}

// Pivot is a search for events sharing key=value with the drawer's event,
// within an hour either side of it.
func (d drawerView) Pivot(key, value string) string {
	v := url.Values{}
	if key != "" {
		v.Set(key, value)
	}
	v.Set("from", d.E.Time.Add(-time.Hour).UTC().Format(time.RFC3339Nano))
	v.Set("to", d.E.Time.Add(time.Hour).UTC().Format(time.RFC3339Nano))
	return "/activity?" + v.Encode()
}

// FromEvent is the editor link drafting a policy from the drawer's event.
func (d drawerView) FromEvent() string {
	return "/policies/from-event?event=" + strconv.FormatInt(d.E.Time.UnixNano(), 10) + ":" + strconv.FormatInt(d.E.Seq, 10)
}
