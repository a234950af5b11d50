package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestSessionMalwareAndLabelsWait(t *testing.T) {
	e := mustEngine(t, `
session_policies:
  - {id: mal, filters: {apps: [dokuwiki]}, control: upload, malware: true, action: block, message: infected}
  - {id: unlabeled, filters: {apps: [dokuwiki]}, control: upload, files: {extensions: [docx, pdf], label: absent}, action: block}
  - {id: mal-mon, filters: {apps: [origin-lab]}, control: download, malware: true, action: monitor}
`)
	up := func(f *FileInfo, m MalwareStatus) SessionDecision {
		return e.Session(&SessionRequest{Method: "POST", Host: "wiki.lab", Path: "/lib/exe/ajax.php", Kind: KindUpload, File: f, Malware: m})
	}
	docx := &FileInfo{Name: "a.docx", Size: 10}
	d := up(docx, MalwareNotScanned)
	if !d.NeedScan || !d.NeedInspection || d.Pending != ActionBlock || d.Action != ActionAllow {
		t.Fatalf("before scan and label: %+v", d)
	}
	d = up(&FileInfo{Name: "a.docx", Size: 10, LabelKnown: true}, MalwareClean)
	if d.Action != ActionBlock || d.WinningPolicy().ID != "unlabeled" || d.NeedScan || d.NeedInspection {
		t.Fatalf("unlabeled clean docx: %+v", d)
	}
	d = up(&FileInfo{Name: "a.docx", Size: 10, LabelKnown: true, Label: "Confidential"}, MalwareClean)
	if d.Action != ActionAllow {
		t.Fatalf("labeled clean docx: %+v", d)
	}
	d = up(&FileInfo{Name: "a.txt", Size: 10, LabelKnown: true}, MalwareInfected)
	if d.Action != ActionBlock || d.Matches[d.Winner].Cause != CauseMalware || d.Message != "infected" {
		t.Fatalf("infected: %+v", d)
	}
	d = up(&FileInfo{Name: "a.txt", Size: 10}, MalwareScanTimeout)
	if d.Action != ActionBlock || d.Matches[d.Winner].Cause != CauseDefault {
		t.Fatalf("scanner timeout must follow the default (block): %+v", d)
	}
	// A txt is never pending on a label: the rest of the file filter fails.
	d = up(&FileInfo{Name: "a.txt", Size: 10}, MalwareClean)
	if d.NeedInspection || d.Action != ActionAllow {
		t.Fatalf("txt upload: %+v", d)
	}
	// A monitor policy's failed scan is recorded, never blocks.
	d = e.Session(&SessionRequest{Method: "GET", Host: "origin.lab", Path: "/files/x", Kind: KindDownload, File: &FileInfo{Name: "x"}, Malware: MalwareScanFailed})
	if d.Action != ActionMonitor || d.Matches[d.Winner].Cause != CauseDefault {
		t.Fatalf("monitor policy, failed scan: %+v", d)
	}
	d = e.Session(&SessionRequest{Method: "GET", Host: "origin.lab", Path: "/files/x", Kind: KindDownload, File: &FileInfo{Name: "x"}})
	if !d.NeedScan || d.Pending != ActionMonitor {
		t.Fatalf("monitor malware pending: %+v", d)
	}
}

func TestSessionNoticeDefAndBody(t *testing.T) {
	e := mustEngine(t, `
session_policies:
  - {id: mon, filters: {apps: [dokuwiki]}, control: monitor, action: monitor, notice: true, message: "This session is monitored."}
  - {id: edits, filters: {apps: [dokuwiki]}, control: block_activities, activities: [edit_page], content: {detectors: [{id: credit_card}]}, action: block}
`)
	d := e.Session(&SessionRequest{Method: "GET", Host: "wiki.lab", Path: "/lib/exe/fetch.php"})
	if d.Notice == nil || d.Notice.ID != "mon" || d.Def == nil || d.Def.FileKind() != KindDownload {
		t.Fatalf("fetch: %+v", d)
	}
	if !e.WantsBody("POST", "wiki.lab", "/doku.php") || e.WantsBody("GET", "wiki.lab", "/doku.php") || e.WantsBody("POST", "slack.com", "/x") {
		t.Fatal("WantsBody")
	}
	d = e.Session(&SessionRequest{Method: "POST", Host: "wiki.lab", Path: "/doku.php", Body: fields{"do[save]": "1"}})
	if d.Def == nil || strings.Join(d.Def.Content, ",") != "wikitext" || !d.NeedInspection || d.Pending != ActionBlock {
		t.Fatalf("edit: %+v", d)
	}
	if !e.Covers("wiki.lab") || e.Covers("slack.com") {
		t.Fatal("Covers")
	}
}

func TestCompileForRefusesWhatCannotBeEnforced(t *testing.T) {
	src := `
session_policies:
  - {id: mal, control: upload, malware: true, action: block}
  - {id: step, control: download, action: require_step_up}
  - {id: prot, control: download, action: protect, protect: {label: Confidential}}
  - {id: clip, control: block_activities, activities: [cut_copy, send_message], action: block}
`
	set, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(set); err != nil {
		t.Fatalf("the engine alone accepts every control: %v", err)
	}
	_, err = CompileFor(set, Capabilities{})
	var el ErrorList
	if !errors.As(err, &el) || len(el) != 4 {
		t.Fatalf("want 4 refusals, got %v", err)
	}
	for _, want := range []string{`p.yaml:3:5`, `"mal" scans for malware`, `"step" requires step-up`, `"prot" protects`, `controls cut_copy`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q:\n%v", want, err)
		}
	}
	if _, err := CompileFor(set, Capabilities{MalwareScan: true, StepUp: true, Protect: true, ProtectEncrypt: true, ControlScript: true}); err != nil {
		t.Fatalf("all capabilities: %v", err)
	}
	for _, bad := range []string{
		`session_policies: [{id: a, control: monitor, action: monitor, malware: true}]`,
		`session_policies: [{id: a, control: download, action: block, notice: true}]`,
		`session_policies: [{id: a, control: upload, action: block, malware: true, content: {detectors: [{id: iban}]}}]`,
		`session_policies: [{id: a, control: download, action: protect, protect: {label: x, unsupported: monitor}}]`,
		`apps: [{id: x, domains: [x.example], activities: [{id: y, path: /y, kind: sideways}]}]`,
	} {
		set, err := Parse("b.yaml", []byte(bad))
		if err == nil {
			_, err = Compile(set)
		}
		if err == nil {
			t.Errorf("accepted: %s", bad)
		}
	}
}

// A label the proxy could not read (file too large, extraction failed)
// is decided by the default behaviour, never left pending.
func TestSessionUnreadableLabelFollowsDefault(t *testing.T) {
	e := mustEngine(t, `
settings: {oversize_file: allow, inspection_failure: block}
session_policies:
  - {id: unlabeled, filters: {apps: [dokuwiki]}, control: upload, files: {extensions: [docx], label: absent}, action: block}
`)
	for st, want := range map[InspectionStatus]Action{InspectionTooLarge: ActionAllow, InspectionFailed: ActionBlock} {
		d := e.Session(&SessionRequest{Method: "POST", Host: "wiki.lab", Path: "/x", Kind: KindUpload, File: &FileInfo{Name: "a.docx"}, Inspection: st})
		if d.NeedInspection || d.Action != want || d.Matches[d.Winner].Cause != CauseDefault {
			t.Errorf("%s: %+v, want %s by default", st, d, want)
		}
	}
	if !e.CoversUploads("wiki.lab") || e.CoversUploads("slack.com") {
		t.Error("CoversUploads")
	}
	if e.BlockMessage() != DefaultBlockMessage {
		t.Errorf("BlockMessage %q", e.BlockMessage())
	}
	set, _ := Parse("u.yaml", []byte(`session_policies: [{id: u, control: upload, action: protect, protect: {label: x}}]`))
	if _, err := Compile(set); err == nil || !strings.Contains(err.Error(), "control upload cannot protect") {
		t.Errorf("protect on upload: %v", err)
	}
}

// Native clients are intercepted for an app whose session policies name
// them, so those policies can apply; an app whose policies do not name
// them leaves them alone.
func TestNativeClientsInterceptedForSessionPolicies(t *testing.T) {
	e := mustEngine(t, `
session_policies:
  - {id: s, filters: {apps: [dokuwiki], client_apps: [mobile_desktop], groups: [finance]}, control: download, action: block}
  - {id: b, filters: {apps: [origin-lab]}, control: download, action: block}
`)
	native := Subject{ClientApp: ClientMobileDesktop}
	if d := e.Access(&AccessRequest{Subject: native, Host: "wiki.lab"}); !d.Intercept {
		t.Error("native client not intercepted for an app with a native session policy")
	}
	if d := e.Access(&AccessRequest{Subject: native, Host: "origin.lab"}); d.Intercept {
		t.Error("native client intercepted for an app whose policies apply to browsers only")
	}
}
