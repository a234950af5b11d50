package console

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/policy"
)

// The policy form of the editor: the page sends the form as JSON and the
// server writes the YAML with the policy package's own types and encoder,
// so what the form shows and what the file holds cannot disagree.

// FormNames is one filter of the form: any_of and none_of.
type FormNames struct {
	AnyOf  []string `json:"any_of"`
	NoneOf []string `json:"none_of"`
}

// FormFilters are a policy's filters.
type FormFilters struct {
	Apps          FormNames `json:"apps"`
	Users         FormNames `json:"users"`
	Groups        FormNames `json:"groups"`
	DeviceTags    FormNames `json:"device_tags"`
	ClientApps    FormNames `json:"client_apps"`
	UserAgentTags FormNames `json:"user_agent_tags"`
	IPRanges      FormNames `json:"ip_ranges"`
	IPTags        FormNames `json:"ip_tags"`
}

// FormFiles is a session policy's file filter; sizes as "10MB", "2GiB".
type FormFiles struct {
	Names      FormNames `json:"names"`
	Extensions FormNames `json:"extensions"`
	MIMETypes  FormNames `json:"mime_types"`
	MinSize    string    `json:"min_size"`
	MaxSize    string    `json:"max_size"`
	Label      string    `json:"label"` // any, present, absent
	Labels     FormNames `json:"labels"`
}

// FormDetector is one detector reference of the content filter.
type FormDetector struct {
	ID       string `json:"id"`
	MinCount int    `json:"min_count"`
}

// FormContent is a session policy's content filter.
type FormContent struct {
	Detectors []FormDetector `json:"detectors"`
	Match     string         `json:"match"` // any, all
}

// FormProtect is the protect action's block.
type FormProtect struct {
	Label       string `json:"label"`
	Encrypt     bool   `json:"encrypt"`
	Unsupported string `json:"unsupported"` // block (default) or allow
}

// FormPolicy is an access or a session policy as the form edits it. The
// session-only fields must be empty for an access policy.
type FormPolicy struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Disabled    bool        `json:"disabled"`
	Filters     FormFilters `json:"filters"`
	Action      string      `json:"action"`
	Message     string      `json:"message"`
	Severity    string      `json:"severity"`
	Alert       bool        `json:"alert"`

	Control            string      `json:"control,omitempty"`
	Activities         FormNames   `json:"activities"`
	Files              FormFiles   `json:"files"`
	Content            FormContent `json:"content"`
	Protect            FormProtect `json:"protect"`
	Malware            bool        `json:"malware,omitempty"`
	Notice             bool        `json:"notice,omitempty"`
	ApplyIfUnscannable bool        `json:"apply_if_unscannable,omitempty"`
}

type formInput struct {
	Kind   string     `json:"kind"` // access or session
	Policy FormPolicy `json:"policy"`
	// File and Content are the editor's file: when given, the policy is
	// added to it and the directory validated with the result.
	File    string `json:"file"`
	Content string `json:"content"`
}

func names(f FormNames) policy.Names {
	clean := func(l []string) []string {
		var out []string
		for _, s := range l {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return policy.Names{AnyOf: clean(f.AnyOf), NoneOf: clean(f.NoneOf)}
}

func formNames(n policy.Names) FormNames {
	return FormNames{AnyOf: formList(n.AnyOf), NoneOf: formList(n.NoneOf)}
}

func formList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func (f FormFilters) policy() policy.Filters {
	return policy.Filters{Apps: names(f.Apps), Users: names(f.Users), Groups: names(f.Groups), DeviceTags: names(f.DeviceTags),
		ClientApps: names(f.ClientApps), UserAgentTags: names(f.UserAgentTags), IPRanges: names(f.IPRanges), IPTags: names(f.IPTags)}
}

func formFilters(f policy.Filters) FormFilters {
	return FormFilters{Apps: formNames(f.Apps), Users: formNames(f.Users), Groups: formNames(f.Groups), DeviceTags: formNames(f.DeviceTags),
		ClientApps: formNames(f.ClientApps), UserAgentTags: formNames(f.UserAgentTags), IPRanges: formNames(f.IPRanges), IPTags: formNames(f.IPTags)}
}

// enum parses an optional enum field of the form, naming it on error.
func enum(field, v string, into interface{ UnmarshalText([]byte) error }) error {
	if v = strings.TrimSpace(v); v == "" {
		return nil
	}
	if err := into.UnmarshalText([]byte(v)); err != nil {
		return fmt.Errorf("policy.%s: %w", field, err)
	}
	return nil
}

func textOf(v interface{ MarshalText() ([]byte, error) }) string {
	b, err := v.MarshalText()
	if err != nil {
		return ""
	}
	return string(b)
}

var errFormKind = errors.New(`kind must be "access" or "session"`)

// policySetOf turns the form into a set holding its one policy.
func policySetOf(kind string, f FormPolicy) (*policy.PolicySet, error) {
	if strings.TrimSpace(f.ID) == "" {
		return nil, errors.New("policy.id: a policy needs an id")
	}
	var common struct {
		action   policy.Action
		severity policy.Severity
	}
	if err := errors.Join(enum("action", f.Action, &common.action), enum("severity", f.Severity, &common.severity)); err != nil {
		return nil, err
	}
	switch kind {
	case "access":
		var extra []string
		if f.Control != "" {
			extra = append(extra, "control")
		}
		if !names(f.Activities).IsZero() {
			extra = append(extra, "activities")
		}
		if f.Files.MinSize != "" || f.Files.MaxSize != "" || (f.Files.Label != "" && f.Files.Label != "any") || !names(f.Files.Names).IsZero() ||
			!names(f.Files.Extensions).IsZero() || !names(f.Files.MIMETypes).IsZero() || !names(f.Files.Labels).IsZero() {
			extra = append(extra, "files")
		}
		if len(f.Content.Detectors) > 0 {
			extra = append(extra, "content")
		}
		if f.Protect.Label != "" || f.Protect.Encrypt || f.Protect.Unsupported != "" {
			extra = append(extra, "protect")
		}
		if f.Malware || f.Notice || f.ApplyIfUnscannable {
			extra = append(extra, "malware/notice/apply_if_unscannable")
		}
		if len(extra) > 0 {
			return nil, fmt.Errorf("policy: %s belong to session policies, not access policies", strings.Join(extra, ", "))
		}
		p := policy.AccessPolicy{ID: strings.TrimSpace(f.ID), Name: f.Name, Description: f.Description, Disabled: f.Disabled,
			Filters: f.Filters.policy(), Action: common.action, Message: f.Message, Severity: common.severity, Alert: f.Alert}
		return &policy.PolicySet{AccessPolicies: []policy.AccessPolicy{p}}, nil
	case "session":
		p := policy.SessionPolicy{ID: strings.TrimSpace(f.ID), Name: f.Name, Description: f.Description, Disabled: f.Disabled,
			Filters: f.Filters.policy(), Action: common.action, Message: f.Message, Severity: common.severity, Alert: f.Alert,
			Activities: names(f.Activities), Malware: f.Malware, Notice: f.Notice, ApplyIfUnscannable: f.ApplyIfUnscannable,
			Protect: policy.Protect{Label: f.Protect.Label, Encrypt: f.Protect.Encrypt}}
		ff := policy.FileFilter{Names: names(f.Files.Names), Extensions: names(f.Files.Extensions), MIMETypes: names(f.Files.MIMETypes),
			Labels: names(f.Files.Labels)}
		err := errors.Join(enum("control", f.Control, &p.Control), enum("files.label", f.Files.Label, &ff.Label),
			enum("files.min_size", f.Files.MinSize, &ff.MinSize), enum("files.max_size", f.Files.MaxSize, &ff.MaxSize),
			enum("content.match", f.Content.Match, &p.Content.Match), enum("protect.unsupported", f.Protect.Unsupported, &p.Protect.Unsupported))
		if err != nil {
			return nil, err
		}
		p.Files = ff
		for i, d := range f.Content.Detectors {
			if strings.TrimSpace(d.ID) == "" {
				return nil, fmt.Errorf("policy.content.detectors[%d]: a detector needs an id", i)
			}
			if d.MinCount < 0 {
				return nil, fmt.Errorf("policy.content.detectors[%d].min_count: must not be negative", i)
			}
			p.Content.Detectors = append(p.Content.Detectors, policy.DetectorRef{ID: strings.TrimSpace(d.ID), MinCount: d.MinCount})
		}
		return &policy.PolicySet{SessionPolicies: []policy.SessionPolicy{p}}, nil
	}
	return nil, errFormKind
}

func formOfAccess(p *policy.AccessPolicy) FormPolicy {
	return FormPolicy{ID: p.ID, Name: p.Name, Description: p.Description, Disabled: p.Disabled, Filters: formFilters(p.Filters),
		Action: enumText(p.Action != 0, p.Action), Message: p.Message, Severity: enumText(p.Severity != 0, p.Severity), Alert: p.Alert,
		Activities: formNames(policy.Names{}), Files: FormFiles{Names: formNames(policy.Names{}), Extensions: formNames(policy.Names{}),
			MIMETypes: formNames(policy.Names{}), Labels: formNames(policy.Names{}), Label: "any"}, Content: FormContent{Detectors: []FormDetector{}, Match: "any"}}
}

func enumText(set bool, v interface{ MarshalText() ([]byte, error) }) string {
	if !set {
		return ""
	}
	return textOf(v)
}

func formOfSession(p *policy.SessionPolicy) FormPolicy {
	f := FormPolicy{ID: p.ID, Name: p.Name, Description: p.Description, Disabled: p.Disabled, Filters: formFilters(p.Filters),
		Action: enumText(p.Action != 0, p.Action), Message: p.Message, Severity: enumText(p.Severity != 0, p.Severity), Alert: p.Alert,
		Control: enumText(p.Control != 0, p.Control), Activities: formNames(p.Activities),
		Files: FormFiles{Names: formNames(p.Files.Names), Extensions: formNames(p.Files.Extensions), MIMETypes: formNames(p.Files.MIMETypes),
			Label: textOf(p.Files.Label), Labels: formNames(p.Files.Labels)},
		Content: FormContent{Detectors: []FormDetector{}, Match: textOf(p.Content.Match)},
		Protect: FormProtect{Label: p.Protect.Label, Encrypt: p.Protect.Encrypt, Unsupported: enumText(p.Protect.Unsupported != 0, p.Protect.Unsupported)},
		Malware: p.Malware, Notice: p.Notice, ApplyIfUnscannable: p.ApplyIfUnscannable}
	if p.Files.MinSize != 0 {
		f.Files.MinSize = p.Files.MinSize.String()
	}
	if p.Files.MaxSize != 0 {
		f.Files.MaxSize = p.Files.MaxSize.String()
	}
	for _, d := range p.Content.Detectors {
		f.Content.Detectors = append(f.Content.Detectors, FormDetector{ID: d.ID, MinCount: d.MinCount})
	}
	return f
}

// addPolicyTo adds the one policy of rendered (a document from
// policy.Marshal) to src. A file without the policy's top-level key gets
// the rendered text appended, so the admin's text stays as it was; a file
// that has the key gets the policy appended to that list on the node tree
// (comments are kept, the layout is re-indented).
func addPolicyTo(src []byte, key string, rendered []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("the file is not YAML, fix it first: %w", err)
	}
	if len(doc.Content) == 0 {
		return rendered, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("the file's top level is not a mapping")
	}
	list := mapValue(root, key)
	if list == nil {
		out := bytes.TrimRight(src, "\n")
		out = append(out, "\n\n"...)
		return append(out, rendered...), nil
	}
	if list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		list.Kind, list.Tag, list.Value, list.Style = yaml.SequenceNode, "!!seq", "", 0
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s in the file is not a list", key)
	}
	var add yaml.Node
	if err := yaml.Unmarshal(rendered, &add); err != nil {
		return nil, err
	}
	item := mapValue(add.Content[0], key).Content[0]
	if list.Style&yaml.FlowStyle != 0 {
		item.Style |= yaml.FlowStyle
	}
	list.Content = append(list.Content, item)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func policyKey(kind string) string {
	if kind == "session" {
		return "session_policies"
	}
	return "access_policies"
}

// renderForm answers the form's YAML and, when the input names the
// editor's file, the file with the policy added and its validation.
func (c *Console) renderForm(w http.ResponseWriter, r *http.Request, withContent bool) {
	var in formInput
	if err := decodeJSON(r, &in); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	set, err := policySetOf(in.Kind, in.Policy)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	rendered, err := policy.Marshal(set)
	if err != nil {
		apiError(w, http.StatusBadRequest, "policy: "+err.Error())
		return
	}
	out := map[string]any{"yaml": string(rendered)}
	if in.File == "" && !withContent {
		writeJSON(w, http.StatusOK, out)
		return
	}
	if !fileNamePattern.MatchString(in.File) {
		apiError(w, http.StatusBadRequest, ErrBadFileName.Error())
		return
	}
	if len(in.Content) > policy.MaxFileSize {
		apiError(w, http.StatusRequestEntityTooLarge, "policy file too large")
		return
	}
	merged, err := addPolicyTo([]byte(in.Content), policyKey(in.Kind), rendered)
	if err != nil {
		apiError(w, http.StatusBadRequest, "content: "+err.Error())
		return
	}
	files, _, err := c.policyFiles()
	if err != nil {
		apiError(w, statusOf(err), err.Error())
		return
	}
	_, problems := c.validate(withFile(files, in.File, merged))
	out["valid"], out["problems"] = !blocking(problems), problems
	if withContent {
		out["content"] = string(merged)
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) apiPolicyFormRender(w http.ResponseWriter, r *http.Request, _ *session) {
	c.renderForm(w, r, false)
}

func (c *Console) apiPolicyFormAdd(w http.ResponseWriter, r *http.Request, _ *session) {
	c.renderForm(w, r, true)
}

// apiPolicyFormParse opens policy id of a file in the form.
func (c *Console) apiPolicyFormParse(w http.ResponseWriter, r *http.Request, _ *session) {
	var in struct {
		Content string `json:"content"`
		ID      string `json:"id"`
	}
	if err := decodeJSON(r, &in); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(in.Content) > policy.MaxFileSize {
		apiError(w, http.StatusRequestEntityTooLarge, "policy file too large")
		return
	}
	set, perr := policy.Parse("editor.yaml", []byte(in.Content))
	if set != nil {
		for i := range set.AccessPolicies {
			if set.AccessPolicies[i].ID == in.ID {
				writeJSON(w, http.StatusOK, map[string]any{"kind": "access", "policy": formOfAccess(&set.AccessPolicies[i])})
				return
			}
		}
		for i := range set.SessionPolicies {
			if set.SessionPolicies[i].ID == in.ID {
				writeJSON(w, http.StatusOK, map[string]any{"kind": "session", "policy": formOfSession(&set.SessionPolicies[i])})
				return
			}
		}
	}
	msg := fmt.Sprintf("id: no policy %q in the file", in.ID)
	if perr != nil {
		msg += ": " + perr.Error()
	}
	apiError(w, http.StatusBadRequest, msg)
}
