package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// The settings page: every setting of the appliance as it runs, each
// editable from the console unless what is shown is a description rather
// than the file's value (Derived). An edit is a change in the
// pending-changes tray on the configuration file (@config): one key set
// in the YAML, comments and the rest of the file kept, the whole file
// validated as the appliance loads it before it is staged and again before
// it is written (atomically). Settings that apply on reload are taken by
// the running appliance when the tray is applied; the others are marked
// "applies at restart", and once written the page shows them pending until
// the appliance restarts (Restart: through systemd when it runs under it).
// Hand edits keep working: the tray refuses to apply over a file changed
// since the change was staged.

// SettingsOptions are the appliance's settings hooks.
type SettingsOptions struct {
	// ConfigFile is the appliance's configuration file; empty: nothing is
	// editable (the appliance runs on the embedded defaults).
	ConfigFile string
	// Validate loads a configuration file's content as the appliance would
	// (file:line:col in its errors).
	Validate func(content []byte) error
	// Current are the settings in force, grouped for the page.
	Current func() []SettingGroup
	// Exporters are the activity exporters configured (their store sink
	// names: jsonl, syslog, kafka), for "send test event".
	Exporters func() []string
	// RestartHow says how the appliance is restarted (shown beside
	// pending restart settings); Restart asks for it (nil or an error:
	// the console cannot, RestartHow says what to do instead).
	RestartHow func() string
	Restart    func() error
}

// SettingGroup is one section of the page.
type SettingGroup struct {
	Name     string    `json:"name"`
	Settings []Setting `json:"settings"`
}

// Setting is one value.
type Setting struct {
	Key   string `json:"key"` // the configuration key, dotted: activity.alert_daily_limit
	Label string `json:"label"`
	Value string `json:"value"` // in force, as YAML
	// Applies: "reload" (the appliance takes a new value on reload) or
	// "restart" (read at start only).
	Applies string `json:"applies"`
	Hint    string `json:"hint,omitempty"`
	// Derived: Value describes the setting rather than being its YAML
	// value (a secret's file, a list of structures): not edited here.
	Derived bool `json:"derived,omitempty"`
	// Pending is the value in the configuration file when it differs from
	// the one in force and the setting applies at restart ("" none).
	Pending string `json:"pending,omitempty"`
	// Editable is filled by the console: not Derived and a configuration
	// file to write.
	Editable bool `json:"editable"`
	// Staged is the value a pending change sets ("" none).
	Staged string `json:"staged,omitempty"`
}

// SettingsView is GET /api/v1/settings.
type SettingsView struct {
	ConfigFile string         `json:"config_file,omitempty"`
	Groups     []SettingGroup `json:"groups"`
	Exporters  []string       `json:"exporters"`
	Problems   []string       `json:"problems,omitempty"`
	// RestartPending lists the settings written to the file that the
	// running appliance takes only at its next start.
	RestartPending []string `json:"restart_pending,omitempty"`
	// RestartHow says how to restart; CanRestart: the console can ask for
	// it (POST /api/v1/restart).
	RestartHow string `json:"restart_how,omitempty"`
	CanRestart bool   `json:"can_restart"`
}

var errNoSettings = errors.New("this appliance does not show its settings in the console")

// editableSetting finds the setting key among those the console edits.
func (c *Console) editableSetting(key string) (Setting, bool) {
	s := c.opt.Settings
	if s == nil || s.Current == nil || s.ConfigFile == "" {
		return Setting{}, false
	}
	for _, g := range s.Current() {
		for _, st := range g.Settings {
			if st.Key == key && !st.Derived {
				return st, true
			}
		}
	}
	return Setting{}, false
}

// applySetting sets one key of the configuration YAML.
func (c *Console) applySetting(ch Change, before []byte, note func(string) string) ([]byte, string, error) {
	if ch.Content == nil {
		return nil, "", fmt.Errorf("%w: the value is missing", ErrBadChange)
	}
	if before == nil {
		return nil, "", fmt.Errorf("%w: the configuration file does not exist", ErrBadChange)
	}
	var val yaml.Node
	if err := yaml.Unmarshal([]byte(*ch.Content), &val); err != nil {
		return nil, "", fmt.Errorf("%w: value of %s: %v", ErrBadChange, ch.Setting, err)
	}
	if val.Kind != yaml.DocumentNode || len(val.Content) != 1 {
		return nil, "", fmt.Errorf("%w: value of %s: one YAML value", ErrBadChange, ch.Setting)
	}
	v := val.Content[0]
	if v.Kind != yaml.ScalarNode && v.Kind != yaml.SequenceNode {
		return nil, "", fmt.Errorf("%w: value of %s: a scalar or a list", ErrBadChange, ch.Setting)
	}
	v.Style &^= yaml.LiteralStyle | yaml.FoldedStyle
	var doc yaml.Node
	if err := yaml.Unmarshal(before, &doc); err != nil {
		return nil, "", fmt.Errorf("%w: the configuration file does not parse: %v", ErrCannotEdit, err)
	}
	if doc.Kind == 0 { // empty file
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, "", fmt.Errorf("%w: the configuration file is not a YAML mapping", ErrCannotEdit)
	}
	old, err := setYAMLPath(doc.Content[0], strings.Split(ch.Setting, "."), v)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: %v", ErrCannotEdit, ch.Setting, err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrCannotEdit, err)
	}
	_ = enc.Close()
	newText := strings.TrimSpace(*ch.Content)
	if old == "" {
		old = "(default)"
	}
	sum := fmt.Sprintf("setting %s: %s → %s", ch.Setting, clip(old, 80), clip(newText, 80))
	if st, ok := c.editableSetting(ch.Setting); ok && st.Applies != "reload" {
		sum += " (applies at restart)"
	}
	return buf.Bytes(), note(sum), nil
}

// setYAMLPath sets path in mapping m to v (creating mappings on the way)
// and returns the old value as YAML ("" when it was not set).
func setYAMLPath(m *yaml.Node, path []string, v *yaml.Node) (string, error) {
	for i, k := range path {
		if m.Kind != yaml.MappingNode {
			return "", fmt.Errorf("%s is not a mapping", strings.Join(path[:i], "."))
		}
		var next *yaml.Node
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == k {
				next = m.Content[j+1]
				if i == len(path)-1 {
					old := nodeText(next)
					v.HeadComment, v.LineComment, v.FootComment = next.HeadComment, next.LineComment, next.FootComment
					m.Content[j+1] = v
					return old, nil
				}
				break
			}
		}
		if i == len(path)-1 {
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, v)
			return "", nil
		}
		if next == nil {
			next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, next)
		}
		m = next
	}
	return "", errors.New("empty key")
}

func nodeText(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	b, err := yaml.Marshal(n)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func (c *Console) settingsView() (*SettingsView, error) {
	s := c.opt.Settings
	if s == nil || s.Current == nil {
		return nil, errNoSettings
	}
	v := &SettingsView{ConfigFile: s.ConfigFile, Groups: s.Current(), Exporters: []string{}, CanRestart: s.Restart != nil}
	if s.Exporters != nil {
		v.Exporters = append(v.Exporters, s.Exporters()...)
	}
	if s.RestartHow != nil {
		v.RestartHow = s.RestartHow()
	}
	staged := map[string]string{}
	if tv, err := c.trayView(); err == nil {
		for _, ch := range tv.Changes {
			if ch.Kind == ChangeSetting && ch.Content != nil {
				staged[ch.Setting] = *ch.Content
			}
		}
		for _, p := range tv.Problems {
			if p.File == extConfig {
				v.Problems = append(v.Problems, p.Text)
			}
		}
	}
	for gi := range v.Groups {
		for si := range v.Groups[gi].Settings {
			st := &v.Groups[gi].Settings[si]
			st.Editable = !st.Derived && s.ConfigFile != ""
			st.Staged = staged[st.Key]
			if st.Pending != "" {
				v.RestartPending = append(v.RestartPending, st.Key)
			}
		}
	}
	return v, nil
}

// ---- test events ----

// testExporterTimeout bounds "send test event".
var testExporterTimeout = 15 * time.Second

// TestEventResult is what "send test event" reports.
type TestEventResult struct {
	Exporter  string  `json:"exporter"`
	Delivered bool    `json:"delivered"`
	EventID   string  `json:"event_id"`
	Host      string  `json:"host"`
	Seconds   float64 `json:"seconds"`
	Error     string  `json:"error,omitempty"`
}

// testExporter sends a test event through exporter name: the event goes
// into the activity store like any other, and the exporter's own cursor
// (it moves only once the collector acknowledged: the syslog server took
// it, the Kafka brokers acked it, the JSON lines file was fsynced) must
// pass it within the timeout.
func (c *Console) testExporter(ctx context.Context, name, by string) TestEventResult {
	res := TestEventResult{Exporter: name}
	s := c.opt.Settings
	if s == nil || s.Exporters == nil || !slices.Contains(s.Exporters(), name) {
		res.Error = fmt.Sprintf("no exporter %q is configured", name)
		return res
	}
	if c.opt.Activity == nil {
		res.Error = "no activity store"
		return res
	}
	start := time.Now()
	id := uuid.Must(uuid.NewV7())
	res.EventID = id.String()
	res.Host = "test-event-" + strings.ReplaceAll(id.String()[24:], "-", "") + ".portcullis.invalid"
	ev := activity.Event{ID: id, Time: c.opt.Now().UTC(), Mode: activity.ModeTransparent, User: by, App: "portcullis-console",
		Host: res.Host, Activity: "test_event", Action: "allow", Reason: "console test event for " + name, ClientApp: "console"}
	t, err := c.opt.Activity.EmitDurable(ev)
	if err == nil {
		err = c.opt.Activity.WaitDurable(ctx, t)
	}
	if err != nil {
		res.Error = "the test event could not be stored: " + err.Error()
		return res
	}
	page, err := c.opt.Activity.Search(activity.Query{Text: res.Host, Limit: 1})
	if err != nil || len(page.Events) == 0 {
		res.Error = "the test event is not in the store"
		return res
	}
	seq := page.Events[0].Seq
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		cur, err := c.opt.Activity.Cursor(name)
		if err == nil && cur >= seq {
			res.Delivered, res.Seconds = true, time.Since(start).Seconds()
			return res
		}
		select {
		case <-ctx.Done():
			res.Seconds = time.Since(start).Seconds()
			res.Error = fmt.Sprintf("not delivered within %s: the %s exporter has not confirmed it (collector down, refused or unreachable? see the appliance log)", testExporterTimeout, name)
			return res
		case <-tick.C:
		}
	}
}

const auditExporterTest = "exporter_test"

// ---- API ----

func (c *Console) apiSettings(w http.ResponseWriter, _ *http.Request, _ *session) {
	v, err := c.settingsView()
	if err != nil {
		apiError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

type settingInput struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Note  string `json:"note"`
}

func (c *Console) apiSettingStage(w http.ResponseWriter, r *http.Request, s *session) {
	var in settingInput
	if err := decodeJSON(r, &in); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	ch, problems, err := c.stageChange(r, s, stageInput{Kind: ChangeSetting, Setting: in.Key, Content: &in.Value, Note: in.Note})
	switch {
	case err != nil:
		apiError(w, trayStatus(err), err.Error())
	case len(problems) > 0:
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": problemText(problems), "problems": problems})
	default:
		writeJSON(w, http.StatusCreated, ch)
	}
}

func (c *Console) runExporterTest(r *http.Request, s *session, name string) TestEventResult {
	ctx, cancel := context.WithTimeout(r.Context(), testExporterTimeout)
	defer cancel()
	res := c.testExporter(ctx, name, s.User)
	detail := "delivered"
	if !res.Delivered {
		detail = "failed: " + res.Error
	}
	c.record(r, s, auditExporterTest, name, clip(detail, 300))
	return res
}

func (c *Console) apiExporterTest(w http.ResponseWriter, r *http.Request, s *session) {
	res := c.runExporterTest(r, s, r.PathValue("name"))
	status := http.StatusOK
	if !res.Delivered {
		status = http.StatusBadGateway
		if strings.HasPrefix(res.Error, "no exporter") {
			status = http.StatusNotFound
		}
	}
	writeJSON(w, status, res)
}

// ---- restart ----

const auditRestart = "restart"

var errNoRestart = errors.New("this console cannot restart the appliance")

// restart asks for a restart (the console's process ends with it: the
// answer is sent first).
func (c *Console) restart(r *http.Request, s *session) error {
	o := c.opt.Settings
	if o == nil || o.Restart == nil {
		if o != nil && o.RestartHow != nil {
			return fmt.Errorf("%w: %s", errNoRestart, o.RestartHow())
		}
		return errNoRestart
	}
	pending := ""
	if v, err := c.settingsView(); err == nil && len(v.RestartPending) > 0 {
		pending = "for " + strings.Join(v.RestartPending, ", ")
	}
	err := o.Restart()
	detail := "requested " + pending
	if err != nil {
		detail = "refused: " + err.Error()
	}
	c.record(r, s, auditRestart, "appliance", clip(strings.TrimSpace(detail), 300))
	return err
}

func (c *Console) apiRestart(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.restart(r, s); err != nil {
		apiError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "restarting"})
}

func (c *Console) settingsRestartForm(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.restart(r, s); err != nil {
		c.renderSettings(w, r, s, http.StatusConflict, "Restart: "+err.Error(), nil)
		return
	}
	http.Redirect(w, r, "/settings?done=restarting", http.StatusSeeOther)
}

// ---- page ----

type settingsPageData struct {
	*SettingsView
	Test *TestEventResult
	SNMP *SNMPUsersView // nil: users not managed here
}

func (c *Console) settingsPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderSettings(w, r, s, http.StatusOK, "", nil)
}

func (c *Console) renderSettings(w http.ResponseWriter, r *http.Request, s *session, status int, msg string, test *TestEventResult) {
	v, err := c.settingsView()
	if err != nil {
		msg = err.Error()
		v = &SettingsView{}
	}
	flash := ""
	switch r.URL.Query().Get("done") {
	case "staged":
		flash = "Change added to the pending changes: apply it there."
	case "restarting":
		flash = "Restart requested: the console is back once the appliance has started again."
	case "snmp-user":
		flash = "SNMP users changed."
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	c.render(w, r, s, "settings", view{Title: "Settings", Nav: "settings", Error: msg, Flash: flash, D: settingsPageData{SettingsView: v, Test: test, SNMP: c.snmpUsersView()}})
}

func (c *Console) settingsStageForm(w http.ResponseWriter, r *http.Request, s *session) {
	val := r.PostFormValue("value")
	_, problems, err := c.stageChange(r, s, stageInput{Kind: ChangeSetting, Setting: r.PostFormValue("key"), Content: &val, Note: r.PostFormValue("note")})
	switch {
	case err != nil:
		c.renderSettings(w, r, s, trayStatus(err), err.Error(), nil)
	case len(problems) > 0:
		c.renderSettings(w, r, s, http.StatusUnprocessableEntity, "Refused: "+problemText(problems), nil)
	default:
		http.Redirect(w, r, "/settings?done=staged", http.StatusSeeOther)
	}
}

func (c *Console) settingsTestForm(w http.ResponseWriter, r *http.Request, s *session) {
	res := c.runExporterTest(r, s, r.PostFormValue("exporter"))
	status := http.StatusOK
	if !res.Delivered {
		status = http.StatusBadGateway
	}
	c.renderSettings(w, r, s, status, "", &res)
}
