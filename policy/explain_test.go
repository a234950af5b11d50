package policy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", path, got)
	}
}

func TestExplainGolden(t *testing.T) {
	e, err := Compile(loadExamples(t))
	if err != nil {
		t.Fatal(err)
	}
	unmanaged := Subject{User: "bob@corp.example", Groups: []string{"staff"}, SourceIP: ip("192.0.2.50")}
	managed := Subject{User: "alice@corp.example", Groups: []string{"staff", "contractors"}, DeviceTags: []string{"managed"},
		SourceIP: ip("198.18.0.20")}
	nativeHome := Subject{User: "carol@corp.example", ClientApp: ClientMobileDesktop, SourceIP: ip("192.0.2.99")}

	access := map[string]AccessRequest{
		"access_unmanaged_slack":   {Host: "app.slack.com", Subject: unmanaged},
		"access_contractor_github": {Host: "github.com", Subject: managed},
		"access_native_slack_home": {Host: "slack.com", Subject: nativeHome},
		"access_not_in_catalog":    {Host: "news.example", Subject: unmanaged},
	}
	for name, req := range access {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			d := e.Access(&req)
			e.ExplainAccess(&buf, &req, &d)
			golden(t, name, buf.Bytes())
		})
	}

	card := e.NewInspector()
	card.Write([]byte("please charge 4111 1111 1111 1111 today"))
	ssn := e.NewInspector()
	ssn.Write([]byte("employee 078-05-1121, ssn 123-45-6789"))
	session := map[string]SessionRequest{
		"session_chat_card": {Subject: unmanaged, Method: "POST", Host: "chat.lab", Path: "/api/chat.postMessage",
			Inspection: InspectionDone, Content: card.Result()},
		"session_chat_needs_inspection": {Subject: unmanaged, Method: "POST", Host: "chat.lab", Path: "/api/chat.postMessage"},
		"session_protect_download": {Subject: managed, Method: "GET", Host: "files.corp.example", Path: "/sites/x/report.docx",
			Kind: KindDownload, File: &FileInfo{Name: "report.docx", MIME: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
				Size: 48213, Label: "Confidential", LabelKnown: true}, Inspection: InspectionDone, Content: ssn.Result()},
		"session_unscannable_download": {Subject: unmanaged, Method: "GET", Host: "origin.lab", Path: "/files/big.zip",
			Kind: KindDownload, File: &FileInfo{Name: "big.zip", MIME: "application/zip", Size: 1 << 30}, Inspection: InspectionTooLarge},
		"session_print_unmanaged": {Subject: unmanaged, Host: "wiki.lab", Kind: KindPrint},
	}
	for name, req := range session {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			d := e.Session(&req)
			e.ExplainSession(&buf, &req, &d)
			golden(t, name, buf.Bytes())
		})
	}
}
