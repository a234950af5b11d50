package policy

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParsePolicy: parsing never panics, and a set that parses serialises
// to YAML that parses to the same serialisation (parse → serialise → parse
// is stable).
func FuzzParsePolicy(f *testing.F) {
	files, _ := filepath.Glob("testdata/examples/*.yaml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte("access_policies: [{id: a, filters: {users: {any_of: [u], none_of: [v]}}, action: block}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		Check(set) // must not panic either
		out, err := Marshal(set)
		if err != nil {
			t.Fatalf("marshal a parsed set: %v", err)
		}
		again, err := Parse("again.yaml", out)
		if err != nil {
			t.Fatalf("serialised set does not parse: %v\n%s", err, out)
		}
		out2, err := Marshal(again)
		if err != nil || string(out) != string(out2) {
			t.Fatalf("unstable:\n%s\n---\n%s", out, out2)
		}
	})
}

// FuzzEvaluate: any request against the example policies yields a
// decision whose action is the maximum of its matches, without panicking.
func FuzzEvaluate(f *testing.F) {
	e, err := Compile(loadExamples(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("chat.lab", "POST", "/api/chat.postMessage", "bob", "staff", "managed", "192.0.2.1", uint8(0), uint8(0), "report.docx", "card 4111111111111111", int64(10), uint8(1))
	f.Add("files.corp.example:443", "GET", "/a/**/b", "", "", "", "::1", uint8(1), uint8(1), "", "", int64(-1), uint8(3))
	f.Fuzz(func(t *testing.T, host, method, path, user, group, tag, ipStr string, client, kind uint8, name, content string, size int64, status uint8) {
		addr, _ := netip.ParseAddr(ipStr)
		subj := Subject{User: user, Groups: []string{group}, DeviceTags: []string{tag}, ClientApp: ClientApp(client % 2), SourceIP: addr}
		var ad AccessDecision
		e.AccessInto(&AccessRequest{Host: host, Subject: subj}, &ad)
		checkDecision(t, &ad.decision)
		in := e.NewInspector()
		in.Write([]byte(content))
		req := &SessionRequest{Subject: subj, Method: method, Host: host, Path: path, Kind: ActivityKind(kind % 6),
			File: &FileInfo{Name: name, Size: size}, Inspection: InspectionStatus(status % 5), Content: in.Result()}
		var sd SessionDecision
		e.SessionInto(req, &sd)
		checkDecision(t, &sd.decision)
	})
}

func checkDecision(t *testing.T, d *decision) {
	t.Helper()
	want := ActionAllow
	for _, m := range d.Matches {
		want = max(want, m.Action)
	}
	if d.Action != want {
		t.Fatalf("action %s, max of matches %s", d.Action, want)
	}
}
