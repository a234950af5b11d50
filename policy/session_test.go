package policy

import (
	"fmt"
	"strings"
	"testing"
)

func TestSessionControlsAndActivities(t *testing.T) {
	e := mustEngine(t, `
session_policies:
  - {id: mon, filters: {apps: [chat-lab]}, control: monitor, action: monitor}
  - {id: no-print, filters: {apps: [chat-lab]}, control: block_activities, activities: [print, cut_copy], action: block}
  - {id: no-send, filters: {apps: [chat-lab]}, control: block_activities, activities: [send_message], action: require_step_up}
  - {id: dl, filters: {apps: [chat-lab]}, control: download, action: block, message: no downloads}
  - {id: ul, filters: {apps: [chat-lab]}, control: upload, action: monitor}
  - {id: wiki-edit, filters: {apps: [dokuwiki]}, control: block_activities, activities: [edit_page], action: block}
`)
	tests := []struct {
		name     string
		req      SessionRequest
		matches  []string
		action   Action
		activity string
	}{
		{"plain request: monitor only", SessionRequest{Method: "GET", Host: "chat.lab", Path: "/"}, []string{"mon"}, ActionMonitor, ""},
		{"print", SessionRequest{Host: "chat.lab", Kind: KindPrint}, []string{"mon", "no-print"}, ActionBlock, "print"},
		{"cut/copy", SessionRequest{Host: "chat.lab", Kind: KindCutCopy}, []string{"mon", "no-print"}, ActionBlock, "cut_copy"},
		{"paste not listed", SessionRequest{Host: "chat.lab", Kind: KindPaste}, []string{"mon"}, ActionMonitor, "paste"},
		{"catalog activity resolved", SessionRequest{Method: "POST", Host: "chat.lab", Path: "/api/chat.postMessage"}, []string{"mon", "no-send"}, ActionStepUp, "send_message"},
		{"wrong method is no activity", SessionRequest{Method: "GET", Host: "chat.lab", Path: "/api/chat.postMessage"}, []string{"mon"}, ActionMonitor, ""},
		{"activity given by caller", SessionRequest{Host: "chat.lab", Activity: "send_message"}, []string{"mon", "no-send"}, ActionStepUp, "send_message"},
		{"download", SessionRequest{Method: "GET", Host: "chat.lab", Path: "/f", Kind: KindDownload}, []string{"mon", "dl"}, ActionBlock, "download"},
		{"upload", SessionRequest{Method: "POST", Host: "chat.lab", Path: "/f", Kind: KindUpload}, []string{"mon", "ul"}, ActionMonitor, "upload"},
		{"other app", SessionRequest{Method: "GET", Host: "slack.com", Path: "/", Kind: KindDownload}, nil, ActionAllow, "download"},
		{"unknown host", SessionRequest{Method: "GET", Host: "nope.example", Path: "/"}, nil, ActionAllow, ""},
		{"body field match", SessionRequest{Method: "POST", Host: "wiki.lab", Path: "/doku.php", Body: fields{"do[save]": "Save"}}, []string{"wiki-edit"}, ActionBlock, "edit_page"},
		{"body field missing", SessionRequest{Method: "POST", Host: "wiki.lab", Path: "/doku.php", Body: fields{"do": "login"}}, nil, ActionAllow, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d SessionDecision
			e.SessionInto(&tc.req, &d)
			var got []string
			for _, m := range d.Matches {
				got = append(got, m.Policy.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.matches) || d.Action != tc.action || d.Activity != tc.activity {
				t.Fatalf("matches %v action %s activity %q; want %v %s %q", got, d.Action, d.Activity, tc.matches, tc.action, tc.activity)
			}
		})
	}
	d := e.Session(&SessionRequest{Host: "chat.lab", Kind: KindDownload})
	if !d.ReplaceFile || d.Message != "no downloads" {
		t.Fatalf("blocked download: replace %v message %q", d.ReplaceFile, d.Message)
	}
}

func TestSessionPrecedence(t *testing.T) {
	all := []string{"monitor", "protect", "require_step_up", "block"}
	// Every order of two actions: the more restrictive wins.
	for _, a := range all {
		for _, b := range all {
			src := "session_policies:\n"
			for i, act := range []string{a, b} {
				prot := ""
				if act == "protect" {
					prot = ", protect: {encrypt: true}"
				}
				src += fmt.Sprintf("  - {id: p%d, filters: {groups: [g%d]}, control: download, action: %s%s}\n", i, i, act, prot)
			}
			e := mustEngine(t, src)
			d := e.Session(&SessionRequest{Host: "box.com", Kind: KindDownload, Subject: Subject{Groups: []string{"g0", "g1"}}})
			var want Action
			_ = want.UnmarshalText([]byte(a))
			var wb Action
			_ = wb.UnmarshalText([]byte(b))
			if d.Action != max(want, wb) {
				t.Errorf("%s + %s = %s", a, b, d.Action)
			}
			if d.Action == ActionProtect && (d.Protect == nil || !d.Protect.Encrypt) {
				t.Errorf("%s + %s: protect settings missing", a, b)
			}
		}
	}
}

func TestSessionFileFilters(t *testing.T) {
	doc := &FileInfo{Name: "Plan.DOCX", MIME: "application/vnd.openxmlformats-officedocument.wordprocessingml.document", Size: 2 << 20, Label: "Confidential", LabelKnown: true}
	noLabel := &FileInfo{Name: "notes.txt", MIME: "text/plain; charset=utf-8", Size: 100, LabelKnown: true}
	unknownSize := &FileInfo{Name: "x.bin", MIME: "application/octet-stream", Size: -1}
	tests := []struct {
		files string
		file  *FileInfo
		want  bool
	}{
		{`{extensions: [docx]}`, doc, true},
		{`{extensions: [.docx, pdf]}`, doc, true},
		{`{extensions: [pdf]}`, doc, false},
		{`{extensions: {none_of: [txt]}}`, noLabel, false},
		{`{names: ["plan*"]}`, doc, true},
		{`{names: ["*.txt"]}`, doc, false},
		{`{names: {none_of: ["*.txt"]}}`, noLabel, false},
		{`{mime_types: [application/*]}`, doc, true},
		{`{mime_types: [text/plain]}`, noLabel, true},
		{`{mime_types: [text/*]}`, doc, false},
		{`{mime_types: {none_of: [text/*]}}`, noLabel, false},
		{`{min_size: 1MiB}`, doc, true},
		{`{min_size: 1MiB}`, noLabel, false},
		{`{max_size: 1KB}`, noLabel, true},
		{`{max_size: 1KB}`, doc, false},
		{`{max_size: 1KB}`, unknownSize, false},
		{`{label: present}`, doc, true},
		{`{label: present}`, noLabel, false},
		{`{label: absent}`, noLabel, true},
		{`{label: absent}`, doc, false},
		{`{labels: [confidential]}`, doc, true},
		{`{labels: [Public]}`, doc, false},
		{`{labels: [Public]}`, noLabel, false},
		{`{labels: {none_of: [Confidential]}}`, doc, false},
		{`{labels: {none_of: [Confidential]}}`, noLabel, true},
		{`{extensions: [docx]}`, nil, false},
	}
	for _, tc := range tests {
		name := tc.files
		if tc.file != nil {
			name += " " + tc.file.Name
		}
		t.Run(name, func(t *testing.T) {
			e := mustEngine(t, fmt.Sprintf("session_policies: [{id: p, control: download, files: %s, action: block}]", tc.files))
			d := e.Session(&SessionRequest{Host: "box.com", Kind: KindDownload, File: tc.file})
			if got := len(d.Matches) == 1; got != tc.want {
				t.Fatalf("matched %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSessionContent(t *testing.T) {
	e := mustEngine(t, `
detectors:
  - {id: codes, keywords: [bluebird]}
settings: {inspection_timeout: monitor, oversize_file: allow}
session_policies:
  - id: cards
    control: upload
    content: {detectors: [{id: credit_card, min_count: 2}]}
    action: block
  - id: both
    control: upload
    content: {detectors: [{id: email}, {id: codes}], match: all}
    action: require_step_up
  - id: ssn-anyway
    control: upload
    content: {detectors: [{id: us_ssn}]}
    apply_if_unscannable: true
    action: monitor
`)
	scan := func(text string) *ContentResult {
		in := e.NewInspector()
		in.Write([]byte(text))
		return in.Result()
	}
	type want struct {
		ids    string
		action Action
		need   bool
	}
	tests := []struct {
		name   string
		status InspectionStatus
		text   string
		want   want
	}{
		{"not inspected yet", InspectionNotDone, "", want{"[]", ActionAllow, true}},
		{"one card is below min_count", InspectionDone, "card 4111 1111 1111 1111", want{"[]", ActionAllow, false}},
		{"two cards", InspectionDone, "4111 1111 1111 1111 and 5500-0000-0000-0004", want{"[cards:content]", ActionBlock, false}},
		{"all: only email", InspectionDone, "mail bob@corp.example", want{"[]", ActionAllow, false}},
		{"all: email and keyword", InspectionDone, "mail bob@corp.example about Bluebird", want{"[both:content]", ActionStepUp, false}},
		{"ssn", InspectionDone, "SSN 123-45-6789", want{"[ssn-anyway:content]", ActionMonitor, false}},
		{"failure: default block, policy override", InspectionFailed, "", want{"[cards:default both:default ssn-anyway:unscannable]", ActionBlock, false}},
		{"timeout: default monitor", InspectionTimeout, "", want{"[cards:default both:default ssn-anyway:unscannable]", ActionMonitor, false}},
		{"too large: default allow", InspectionTooLarge, "", want{"[cards:default both:default ssn-anyway:unscannable]", ActionMonitor, false}},
	}
	causes := map[Cause]string{CauseContent: "content", CauseDefault: "default", CauseUnscannable: "unscannable", CauseFilters: "filters"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := &SessionRequest{Host: "box.com", Kind: KindUpload, Inspection: tc.status}
			if tc.status == InspectionDone {
				req.Content = scan(tc.text)
			}
			d := e.Session(req)
			var got []string
			for _, m := range d.Matches {
				got = append(got, m.Policy.ID+":"+causes[m.Cause])
			}
			if s := "[" + strings.Join(got, " ") + "]"; s != tc.want.ids || d.Action != tc.want.action || d.NeedInspection != tc.want.need {
				t.Fatalf("got %s %s need=%v; want %s %s need=%v", s, d.Action, d.NeedInspection, tc.want.ids, tc.want.action, tc.want.need)
			}
		})
	}
	// A result from another engine (a reload in between) is read by id.
	other := mustEngine(t, "detectors: [{id: zzz, regex: 'z+'}, {id: codes, keywords: [bluebird]}]")
	in := other.NewInspector()
	in.Write([]byte("bob@corp.example bluebird"))
	d := e.Session(&SessionRequest{Host: "box.com", Kind: KindUpload, Inspection: InspectionDone, Content: in.Result()})
	if d.Action != ActionStepUp {
		t.Fatalf("cross-engine result: %s", d.Action)
	}
}
