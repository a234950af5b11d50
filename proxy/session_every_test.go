package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/policy"
)

// everyControl is one session policy for each control and every action it
// allows, each reached by its own file name or activity.
const everyControl = `
session_policies:
  - {id: c-monitor, filters: {apps: [origin-lab]}, control: monitor, action: monitor}
  - {id: c-act-monitor, filters: {apps: [origin-lab]}, control: block_activities, activities: [download_file], action: monitor}
  - {id: c-act-block, filters: {apps: [origin-lab]}, control: block_activities, activities: [upload_file], action: block, message: "activity blocked"}
  - {id: c-act-stepup, filters: {apps: [origin-lab]}, control: block_activities, activities: [print], action: require_step_up}
  - {id: c-dl-monitor, filters: {apps: [origin-lab]}, control: download, files: {names: ["dm-*"]}, action: monitor}
  - {id: c-dl-protect, filters: {apps: [origin-lab]}, control: download, files: {names: ["dp-*"]}, action: protect, protect: {label: Confidential}}
  - {id: c-dl-block, filters: {apps: [origin-lab]}, control: download, files: {names: ["db-*"]}, action: block, message: "download blocked"}
  - {id: c-dl-stepup, filters: {apps: [origin-lab]}, control: download, files: {names: ["ds-*"]}, action: require_step_up}
  - {id: c-dl-malware, filters: {apps: [origin-lab]}, control: download, files: {names: ["dx-*"]}, malware: true, action: block, message: "malware"}
  - {id: c-up-monitor, filters: {apps: [origin-lab]}, control: upload, files: {names: ["um-*"]}, action: monitor}
  - {id: c-up-block, filters: {apps: [origin-lab]}, control: upload, files: {names: ["ub-*"]}, action: block, message: "upload blocked"}
  - {id: c-up-stepup, filters: {apps: [origin-lab]}, control: upload, files: {names: ["us-*"]}, action: require_step_up}
`

// evilScanner calls a file infected when it contains "EVIL".
type evilScanner struct{}

func (evilScanner) Scan(_ context.Context, r io.Reader, _ int64, _ string) (bool, string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return false, "", err
	}
	return bytes.Contains(b, []byte("EVIL")), "Test.Evil", nil
}

// Every control type with every action it allows is enforced by the
// proxy, in transparent and suffix mode; step-up, which this appliance
// cannot perform, is refused at load (CompileFor) and, should such a
// policy reach the proxy anyway, fails closed.
func TestEveryControlAndActionEnforced(t *testing.T) {
	set, err := policy.Parse("every.yaml", []byte(everyControl))
	if err != nil {
		t.Fatal(err)
	}
	_, err = policy.CompileFor(set, policy.Capabilities{MalwareScan: true, Protect: true, ControlScript: true})
	var el policy.ErrorList
	if !errors.As(err, &el) || len(el) != 3 || !strings.Contains(err.Error(), "c-dl-stepup") || !strings.Contains(err.Error(), "c-up-stepup") || !strings.Contains(err.Error(), "c-act-stepup") {
		t.Fatalf("CompileFor should refuse exactly the three step-up policies: %v", err)
	}
	forModes(t, everyControl, func(sc *SessionConfig) { sc.Protector, sc.Scanner = fakeProtector{}, evilScanner{} },
		func(t *testing.T, sh *sessionHarness, m sessionMode) {
			for _, f := range []string{"dm-a.txt", "dp-a.pdf", "db-a.txt", "ds-a.txt", "dx-a.txt", "dx-b.txt", "plain.txt"} {
				body := []byte("contents of " + f)
				if f == "dx-a.txt" {
					body = []byte("EVIL payload")
				}
				ct := "application/octet-stream"
				if strings.HasSuffix(f, ".pdf") {
					body, ct = pdfWithText("report"), "application/pdf"
				}
				sh.origin.put("/files/"+f, ct, "attachment", body)
			}
			get := func(name string) (*http.Response, []byte, Record) {
				resp, body := sh.do(t, m.h2, "GET", "https://origin.lab/files/"+name, nil)
				return resp, body, sh.recs.find(t, "GET", "/files/"+name)
			}
			// want: the policy matched and the action was enforced (among
			// equal actions the first policy in the files is the winner, so
			// monitors are checked by the matched list).
			want := func(rec Record, policyID string, a policy.Action) {
				t.Helper()
				matched := strings.Contains(","+strings.Join(rec.Policies, ",")+",", ","+policyID+",")
				if !matched || rec.Action != a || a > policy.ActionMonitor && rec.Policy != policyID {
					t.Errorf("%s %s: winner %q of %v, action %s; want %q to %s", rec.Method, rec.Path, rec.Policy, rec.Policies, rec.Action, policyID, a)
				}
			}
			_, body, rec := get("plain.txt")
			want(rec, "c-monitor", policy.ActionMonitor)
			want(rec, "c-act-monitor", policy.ActionMonitor)
			if string(body) != "contents of plain.txt" {
				t.Errorf("monitored download altered: %q", body)
			}
			_, body, rec = get("dm-a.txt")
			want(rec, "c-dl-monitor", policy.ActionMonitor)
			if string(body) != "contents of dm-a.txt" {
				t.Errorf("download monitor: %q", body)
			}
			_, body, rec = get("dp-a.pdf")
			want(rec, "c-dl-protect", policy.ActionProtect)
			if !bytes.HasPrefix(body, []byte("PROTECTED:Confidential:")) {
				t.Errorf("protected download %q", body[:min(len(body), 40)])
			}
			for name, id := range map[string]string{"db-a.txt": "c-dl-block", "ds-a.txt": "c-dl-stepup", "dx-a.txt": "c-dl-malware"} {
				resp, body, rec := get(name)
				want(rec, id, policy.ActionBlock)
				if !strings.Contains(resp.Header.Get("Content-Disposition"), name+".blocked.txt") || bytes.Contains(body, []byte("contents of")) {
					t.Errorf("%s: not replaced: %v %q", name, resp.Header, body)
				}
			}
			if _, body, rec = get("dx-b.txt"); rec.Malware != policy.MalwareClean || string(body) != "contents of dx-b.txt" {
				t.Errorf("clean file under the malware policy: %v %q", rec.Malware, body)
			}

			up := func(name string) (*http.Response, Record) {
				ct, b := multipartBody(nil, name, "text/plain", []byte("upload "+name))
				resp, _ := sh.do(t, m.h2, "POST", "https://origin.lab/files/in", bytes.NewReader(b), "Content-Type", ct)
				return resp, sh.recs.find(t, "POST", "/files/in")
			}
			resp, rec := up("um-a.txt")
			want(rec, "c-up-monitor", policy.ActionMonitor)
			if resp.StatusCode != 200 || len(sh.origin.requests("POST", "/files/in")) != 1 {
				t.Errorf("monitored upload: status %d, origin saw %d", resp.StatusCode, len(sh.origin.requests("POST", "/files/in")))
			}
			for name, id := range map[string]string{"ub-a.txt": "c-up-block", "us-a.txt": "c-up-stepup"} {
				resp, rec := up(name)
				want(rec, id, policy.ActionBlock)
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s: status %d", name, resp.StatusCode)
				}
			}
			if n := len(sh.origin.requests("POST", "/files/in")); n != 1 {
				t.Errorf("the origin saw %d uploads, want only the monitored one", n)
			}
			// The catalog activity upload_file (POST /upload) is blocked by
			// block_activities before it reaches the app.
			resp, _ = sh.do(t, m.h2, "POST", "https://origin.lab/upload", strings.NewReader(`{"x":1}`), "Content-Type", "application/json")
			if rec := sh.recs.find(t, "POST", "/upload"); resp.StatusCode != http.StatusForbidden || rec.Policy != "c-act-block" || len(sh.origin.requests("POST", "/upload")) != 0 {
				t.Errorf("activity block: status %d, record %+v", resp.StatusCode, rec)
			}
		})
}
