package console

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// EventJSON is an event as the API, the JSON-lines export and the pages'
// scripts see it: stable snake_case names, independent of the store's Go
// struct.
type EventJSON struct {
	Seq        int64                `json:"seq"`
	ID         string               `json:"id"`
	Time       time.Time            `json:"time"`
	Mode       string               `json:"mode"`
	User       string               `json:"user"`
	Groups     []string             `json:"groups,omitempty"`
	SourceIP   string               `json:"source_ip"`
	DeviceTags []string             `json:"device_tags,omitempty"`
	ClientApp  string               `json:"client_app"`
	JA4        string               `json:"ja4,omitempty"`
	App        string               `json:"app"`
	Host       string               `json:"host"`
	Method     string               `json:"method"`
	Path       string               `json:"path"`
	Activity   string               `json:"activity"`
	FileName   string               `json:"file_name,omitempty"`
	FileSize   int64                `json:"file_size,omitempty"`
	FileSHA256 string               `json:"file_sha256,omitempty"`
	FileType   string               `json:"file_type,omitempty"`
	FileLabel  string               `json:"file_label,omitempty"`
	Detectors  []activity.Detection `json:"detectors,omitempty"`
	Policies   []string             `json:"policies,omitempty"`
	Action     string               `json:"action"`
	Reason     string               `json:"reason"`
	BytesUp    int64                `json:"bytes_up"`
	BytesDown  int64                `json:"bytes_down"`
	SessionID  string               `json:"session_id,omitempty"`
}

func eventJSON(e *activity.Event) EventJSON {
	ip := ""
	if e.SourceIP.IsValid() {
		ip = e.SourceIP.String()
	}
	return EventJSON{Seq: e.Seq, ID: e.ID.String(), Time: e.Time.UTC(), Mode: string(e.Mode), User: e.User, Groups: e.Groups,
		SourceIP: ip, DeviceTags: e.DeviceTags, ClientApp: e.ClientApp, JA4: e.JA4, App: e.App, Host: e.Host,
		Method: e.Method, Path: e.Path, Activity: e.Activity, FileName: e.FileName, FileSize: e.FileSize,
		FileSHA256: e.FileSHA256, FileType: e.FileType, FileLabel: e.FileLabel, Detectors: e.Detectors,
		Policies: e.Policies, Action: e.Action, Reason: e.Reason, BytesUp: e.BytesUp, BytesDown: e.BytesDown, SessionID: e.SessionID}
}

// eventFilters are the URL parameters of a search, in the order the page
// shows them, each with the store field it filters. A parameter given
// more than once matches any of its values (OR); not_<param> excludes its
// values (not_q: events whose text contains it). Different parameters
// combine with AND.
var eventFilters = []struct {
	Param, Label string
	Field        activity.Field
}{
	{"user", "User", activity.FieldUser}, {"app", "App", activity.FieldApp}, {"action", "Action", activity.FieldAction},
	{"activity", "Activity", activity.FieldActivity}, {"policy", "Policy", activity.FieldPolicy},
	{"tag", "Device tag", activity.FieldTag}, {"client", "Client app", activity.FieldClientApp},
	{"source", "Source", activity.FieldSource}, {"host", "Host", activity.FieldHost}, {"q", "Text", ""},
}

// parseEventQuery reads a search from URL parameters: the filters above,
// since (a relative range: 15m, 1h, 24h, 7d, 30d), or from/to (RFC 3339 or
// the browser's datetime-local form), after (the page token) and limit.
func parseEventQuery(v url.Values, now time.Time) (activity.Query, error) {
	q := activity.Query{Text: strings.TrimSpace(v.Get("q")), NotText: strings.TrimSpace(v.Get("not_q")), After: v.Get("after")}
	single := map[string]*string{"user": &q.User, "app": &q.App, "action": &q.Action, "activity": &q.Activity,
		"policy": &q.Policy, "tag": &q.DeviceTag, "client": &q.ClientApp}
	for _, f := range eventFilters {
		if f.Field == "" {
			continue
		}
		vals := nonEmpty(v[f.Param])
		switch {
		case len(vals) == 1 && f.Param == "source":
			a, err := netip.ParseAddr(vals[0])
			if err != nil {
				return q, fmt.Errorf("source %q: not an IP address", vals[0])
			}
			q.Source = a
		case len(vals) == 1 && single[f.Param] != nil:
			*single[f.Param] = vals[0]
		case len(vals) > 0:
			if q.Any == nil {
				q.Any = map[activity.Field][]string{}
			}
			q.Any[f.Field] = vals
		}
		if not := nonEmpty(v["not_"+f.Param]); len(not) > 0 {
			if q.Not == nil {
				q.Not = map[activity.Field][]string{}
			}
			q.Not[f.Field] = not
		}
	}
	if s := v.Get("since"); s != "" {
		d, err := parseRelative(s)
		if err != nil {
			return q, err
		}
		q.From = now.Add(-d)
	}
	for _, f := range []struct {
		param string
		dst   *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		s := v.Get(f.param)
		if s == "" {
			continue
		}
		t, err := parseTime(s)
		if err != nil {
			return q, fmt.Errorf("%s: %w", f.param, err)
		}
		*f.dst = t
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return q, fmt.Errorf("limit %q: a positive number", s)
		}
		q.Limit = min(n, 1000)
	}
	return q, nil
}

func nonEmpty(vals []string) []string {
	var out []string
	for _, s := range vals {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseRelative reads 15m, 1h, 24h, 7d, 30d (d for days, which
// time.ParseDuration lacks).
func parseRelative(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 1 || days > 3660 {
			return 0, fmt.Errorf("since %q: use 15m, 1h, 7d", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("since %q: use 15m, 1h, 7d", s)
	}
	return d, nil
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: use RFC 3339 (2006-01-02T15:04:05Z)", s)
}

func (c *Console) apiEvents(w http.ResponseWriter, r *http.Request, _ *session) {
	q, err := parseEventQuery(r.URL.Query(), c.opt.Now())
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := c.opt.Activity.Search(q)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, activity.ErrBadQuery) || errors.Is(err, activity.ErrBadPageToken) {
			status = http.StatusBadRequest
		}
		apiError(w, status, err.Error())
		return
	}
	out := struct {
		Events []EventJSON `json:"events"`
		Next   string      `json:"next,omitempty"`
	}{Events: make([]EventJSON, 0, len(p.Events)), Next: p.Next}
	for i := range p.Events {
		out.Events = append(out.Events, eventJSON(&p.Events[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

// csvHeader is the CSV export's columns.
var csvHeader = []string{"time", "seq", "id", "mode", "user", "groups", "source_ip", "device_tags", "client_app", "ja4",
	"app", "host", "method", "path", "activity", "file_name", "file_size", "file_sha256", "file_type", "file_label",
	"detectors", "policies", "action", "reason", "bytes_up", "bytes_down", "session_id"}

func csvRow(e *activity.Event) []string {
	det := make([]string, 0, len(e.Detectors))
	for _, d := range e.Detectors {
		det = append(det, d.ID+":"+strconv.Itoa(d.Count))
	}
	ip := ""
	if e.SourceIP.IsValid() {
		ip = e.SourceIP.String()
	}
	row := []string{e.Time.UTC().Format(time.RFC3339Nano), strconv.FormatInt(e.Seq, 10), e.ID.String(), string(e.Mode), e.User,
		strings.Join(e.Groups, ";"), ip, strings.Join(e.DeviceTags, ";"), e.ClientApp, e.JA4, e.App, e.Host, e.Method, e.Path,
		e.Activity, e.FileName, strconv.FormatInt(e.FileSize, 10), e.FileSHA256, e.FileType, e.FileLabel,
		strings.Join(det, ";"), strings.Join(e.Policies, ";"), e.Action, e.Reason,
		strconv.FormatInt(e.BytesUp, 10), strconv.FormatInt(e.BytesDown, 10), e.SessionID}
	for i := range row {
		row[i] = neutralizeCell(row[i])
	}
	return row
}

// neutralizeCell defuses formula injection: a spreadsheet evaluates a cell
// that starts with = + - @ (or a tab or CR, which some strip first), so such
// a cell gets a leading apostrophe and is shown as text. Numbers the
// export itself writes never start with these; traffic-borne values may.
func neutralizeCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// exportEvents streams every event of a search, newest first, page by
// page (no row cap, bounded memory), as CSV or JSON lines.
func (c *Console) exportEvents(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.URL.Query()
	refuse := func(msg string) {
		if isAPI(r) {
			apiError(w, http.StatusBadRequest, msg)
		} else {
			http.Error(w, msg, http.StatusBadRequest)
		}
	}
	q, err := parseEventQuery(v, c.opt.Now())
	if err != nil {
		refuse(err.Error())
		return
	}
	format := v.Get("format")
	if format != "csv" && format != "jsonl" {
		refuse("format: csv or jsonl")
		return
	}
	q.After, q.Limit = "", 1000
	rows := 0
	defer func() {
		c.record(r, s, auditExport, format, fmt.Sprintf("%d events; filters: %s", rows, describeFilters(v)))
	}()
	name := "portcullis-activity-" + c.opt.Now().UTC().Format("20060102T150405Z")
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.jsonl"`)
	}
	flusher, _ := w.(http.Flusher)
	cw := csv.NewWriter(w)
	enc := json.NewEncoder(w)
	if format == "csv" {
		_ = cw.Write(csvHeader)
	}
	for {
		p, err := c.opt.Activity.Search(q)
		if err != nil {
			// Headers are sent: the truncation is said in the body and the log.
			c.opt.Log.Error("console export", "err", err)
			if format == "csv" {
				_ = cw.Write([]string{"# export ended early: " + err.Error()})
				cw.Flush()
			}
			return
		}
		for i := range p.Events {
			if format == "csv" {
				_ = cw.Write(csvRow(&p.Events[i]))
			} else if enc.Encode(eventJSON(&p.Events[i])) != nil {
				return
			}
			rows++
		}
		cw.Flush()
		if cw.Error() != nil || r.Context().Err() != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		if p.Next == "" {
			return
		}
		q.After = p.Next
	}
}

func describeFilters(v url.Values) string {
	var parts []string
	for _, f := range eventFilters {
		for _, k := range []string{f.Param, "not_" + f.Param} {
			for _, s := range v[k] {
				parts = append(parts, k+"="+s)
			}
		}
	}
	for _, k := range []string{"since", "from", "to"} {
		if s := v.Get(k); s != "" {
			parts = append(parts, k+"="+s)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// findEvent returns the event with seq stored at ts (both from the page).
func (c *Console) findEvent(ts time.Time, seq int64) (*activity.Event, error) {
	p, err := c.opt.Activity.Search(activity.Query{From: ts, To: ts.Add(time.Nanosecond), Limit: 1000})
	if err != nil {
		return nil, err
	}
	for i := range p.Events {
		if p.Events[i].Seq == seq {
			return &p.Events[i], nil
		}
	}
	return nil, errors.New("no such event (retention may have removed it)")
}
