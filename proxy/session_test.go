package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/session"
)

const sessionPolicies = `
session_policies:
  - {id: dl-block, filters: {apps: [origin-lab]}, control: download, files: {names: ["blocked-*"]}, action: block, message: "This file may not be downloaded."}
  - {id: dl-dlp-block, filters: {apps: [origin-lab]}, control: download, files: {names: ["secret-*"]}, content: {detectors: [{id: credit_card}]}, action: block, message: "Card numbers may not leave."}
  - {id: dl-dlp-monitor, filters: {apps: [origin-lab]}, control: download, files: {names: ["watched-*"]}, content: {detectors: [{id: credit_card}]}, action: monitor}
  - {id: dl-unlabeled, filters: {apps: [origin-lab]}, control: download, files: {names: ["label-*"], label: absent}, action: block}
  - {id: dl-scan, filters: {apps: [origin-lab]}, control: download, files: {names: ["scan-*"]}, malware: true, action: block}
  - {id: up-unlabeled, filters: {apps: [origin-lab]}, control: upload, files: {extensions: [docx], label: absent}, action: block, message: "Label the document first."}
  - {id: up-dlp, filters: {apps: [origin-lab]}, control: upload, files: {names: ["*.txt"]}, content: {detectors: [{id: credit_card}]}, action: block, message: "No cards in uploads."}
  - {id: wiki-edit, filters: {apps: [dokuwiki]}, control: block_activities, activities: [edit_page], content: {detectors: [{id: credit_card}]}, action: block, message: "No cards in the wiki."}
  - {id: chat, filters: {apps: [chat-lab]}, control: block_activities, activities: [send_message], content: {detectors: [{id: credit_card}]}, action: block, message: "No cards in chat."}
`

type sessionMode struct {
	name   string
	suffix bool
	h2     bool
}

var sessionModes = []sessionMode{{"transparent-h1", false, false}, {"transparent-h2", false, true}, {"suffix", true, false}}

// forModes runs f in transparent mode (HTTP/1.1 and HTTP/2) and suffix mode.
func forModes(t *testing.T, policies string, mutate func(*SessionConfig), f func(t *testing.T, sh *sessionHarness, m sessionMode)) {
	for _, m := range sessionModes {
		t.Run(m.name, func(t *testing.T) {
			f(t, newSessionHarness(t, policies, m.suffix, mutate), m)
		})
	}
}

func assertReplaced(t *testing.T, resp *http.Response, body []byte, name, msg string) {
	t.Helper()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("replaced download: %d %v", resp.StatusCode, resp.Header)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, `filename="`+name+`.blocked.txt"`) || !strings.HasPrefix(cd, "attachment") {
		t.Errorf("Content-Disposition %q", cd)
	}
	if !strings.Contains(string(body), msg) || bytes.Contains(body, []byte(testCard)) {
		t.Errorf("replaced body %q", body)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d for %d bytes", resp.ContentLength, len(body))
	}
}

func TestSessionDownloads(t *testing.T) {
	forModes(t, sessionPolicies, nil, func(t *testing.T, sh *sessionHarness, m sessionMode) {
		pdf := pdfWithText("quarterly " + testCard)
		sh.origin.put("/files/blocked-report.pdf", "application/pdf", "", pdf)
		sh.origin.put("/files/clean.pdf", "application/pdf", "", pdfWithText("nothing here"))
		sh.origin.put("/files/secret-card.txt", "text/plain", "attachment; filename=\"secret-card.txt\"", []byte("name,card\nalice,"+testCard+"\n"))
		sh.origin.put("/files/secret-clean.txt", "text/plain", "attachment", []byte("name\nalice\n"))
		sh.origin.put("/files/secret-card.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "", docx(t, "card "+testCard, ""))
		sh.origin.put("/files/secret-card.pdf", "application/pdf", "", pdf)
		sh.origin.put("/files/watched-card.txt", "application/octet-stream", "", []byte("card "+testCard))
		sh.origin.put("/files/secret-bomb.docx", "application/octet-stream", "", zipBombDocx(t))
		sh.origin.put("/files/secret-bad.docx", "application/octet-stream", "", []byte("PK\x03\x04\x14\x00word/document.xml garbage that is no zip"))
		sh.origin.put("/files/label-plain.docx", "application/octet-stream", "", docx(t, "x", ""))
		sh.origin.put("/files/label-conf.docx", "application/octet-stream", "", docx(t, "x", "Confidential"))
		sh.origin.put("/page.html", "text/html", "", []byte("<html>"+testCard+"</html>"))

		get := func(path string) (*http.Response, []byte) {
			return sh.do(t, m.h2, "GET", "https://origin.lab"+path, nil)
		}
		// Blocked by name, before any inspection.
		resp, body := get("/files/blocked-report.pdf")
		assertReplaced(t, resp, body, "blocked-report.pdf", "This file may not be downloaded.")
		rec := sh.recs.find(t, "GET", "/files/blocked-report.pdf")
		if rec.Action != policy.ActionBlock || rec.Policy != "dl-block" || rec.Decision != "block" || rec.App != "origin-lab" ||
			rec.Activity != "download_file" || rec.File == nil || rec.File.Name != "blocked-report.pdf" || rec.File.MIME != "application/pdf" {
			t.Errorf("block record %+v file %+v", rec, rec.File)
		}
		// A clean file passes byte for byte.
		_, body = get("/files/clean.pdf")
		if !bytes.Equal(body, pdfWithText("nothing here")) {
			t.Error("clean download altered")
		}
		// DLP block: text, docx, PDF with a card; a clean text passes.
		for _, name := range []string{"secret-card.txt", "secret-card.docx", "secret-card.pdf"} {
			resp, body = get("/files/" + name)
			assertReplaced(t, resp, body, name, "Card numbers may not leave.")
			rec = sh.recs.find(t, "GET", "/files/"+name)
			if rec.Policy != "dl-dlp-block" || rec.Inspection != policy.InspectionDone || len(rec.Detectors) == 0 || rec.Detectors[0].ID != "credit_card" {
				t.Errorf("%s: record %+v", name, rec)
			} else if s := rec.Detectors[0].Samples; len(s) == 0 || strings.Contains(s[0], testCard) {
				t.Errorf("%s: samples not masked: %q", name, s)
			}
			if rec.File == nil || rec.File.SHA256 == "" {
				t.Errorf("%s: file %+v", name, rec.File)
			}
		}
		_, body = get("/files/secret-clean.txt")
		if string(body) != "name\nalice\n" {
			t.Errorf("clean text %q", body)
		}
		// DLP monitor: streamed as is, the record carries the masked match.
		_, body = get("/files/watched-card.txt")
		if string(body) != "card "+testCard {
			t.Errorf("monitored download altered: %q", body)
		}
		rec = sh.recs.find(t, "GET", "/files/watched-card.txt")
		if rec.Action != policy.ActionMonitor || rec.Decision != "monitor" || len(rec.Detectors) != 1 || rec.Detectors[0].Count != 1 {
			t.Errorf("monitor record %+v", rec)
		}
		// Zip bomb and malformed docx: inspection failure default (block).
		for _, name := range []string{"secret-bomb.docx", "secret-bad.docx"} {
			resp, body = get("/files/" + name)
			assertReplaced(t, resp, body, name, "Card numbers may not leave.")
			rec = sh.recs.find(t, "GET", "/files/"+name)
			if rec.Inspection != policy.InspectionFailed || rec.InspectionReason == "" {
				t.Errorf("%s: inspection %v %q", name, rec.Inspection, rec.InspectionReason)
			}
		}
		// Label filters: unlabeled blocked, labeled passes.
		resp, body = get("/files/label-plain.docx")
		assertReplaced(t, resp, body, "label-plain.docx", policy.DefaultBlockMessage)
		_, body = get("/files/label-conf.docx")
		if !bytes.Equal(body, docx(t, "x", "Confidential")) {
			t.Error("labeled docx altered")
		}
		if rec = sh.recs.find(t, "GET", "/files/label-conf.docx"); rec.File == nil || rec.File.Label != "Confidential" {
			t.Errorf("label record %+v", rec.File)
		}
		// Pages are not downloads.
		resp, _ = get("/page.html")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html" {
			t.Errorf("page: %d %v", resp.StatusCode, resp.Header)
		}
	})
}

func TestSessionUploads(t *testing.T) {
	forModes(t, sessionPolicies, nil, func(t *testing.T, sh *sessionHarness, m sessionMode) {
		post := func(path, ct string, body []byte, hdr ...string) (*http.Response, []byte) {
			return sh.do(t, m.h2, "POST", "https://origin.lab"+path, bytes.NewReader(body), append([]string{"Content-Type", ct}, hdr...)...)
		}
		// Multipart with a card in a text file: blocked; the origin never saw it.
		ct, body := multipartBody(map[string]string{"note": "hi"}, "cards.txt", "text/plain", []byte("card "+testCard))
		resp, rb := post("/upload", ct, body, "Sec-Fetch-Mode", "cors")
		if resp.StatusCode != 403 || !strings.Contains(string(rb), `"error":"blocked"`) {
			t.Fatalf("card upload: %d %s", resp.StatusCode, rb)
		}
		var jb map[string]string
		if err := json.Unmarshal(rb, &jb); err != nil || jb["message"] != "No cards in uploads." || jb["policy"] != "up-dlp" || jb["reference"] == "" {
			t.Errorf("JSON block %s %v", rb, err)
		}
		if n := len(sh.origin.requests("POST", "/upload")); n != 0 {
			t.Fatalf("origin saw %d blocked uploads", n)
		}
		rec := sh.recs.find(t, "POST", "/upload")
		if rec.Action != policy.ActionBlock || rec.File == nil || rec.File.Name != "cards.txt" || rec.FileParts != 1 || rec.Activity != "upload_file" {
			t.Errorf("upload record %+v %+v", rec, rec.File)
		}
		// A navigation gets the HTML page.
		resp, rb = post("/upload", ct, body, "Sec-Fetch-Mode", "navigate", "Accept", "text/html")
		if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(rb), "No cards in uploads.") {
			t.Errorf("HTML block: %d %s", resp.StatusCode, rb)
		}
		// Clean multipart passes byte for byte.
		ct, body = multipartBody(map[string]string{"note": "hi"}, "clean.txt", "text/plain", []byte("nothing"), "pic.png", "image/png", []byte("\x89PNG\r\n\x1a\nxx"))
		resp, _ = post("/upload", ct, body)
		seen := sh.origin.requests("POST", "/upload")
		if resp.StatusCode != 200 || len(seen) != 1 || seen[0].sha != sha(body) {
			t.Fatalf("clean upload: %d %+v", resp.StatusCode, seen)
		}
		// Label: unlabeled docx blocked, labeled passes.
		ct, body = multipartBody(nil, "plan.docx", "application/octet-stream", docx(t, "x", ""))
		if resp, rb = post("/upload", ct, body); resp.StatusCode != 403 || !strings.Contains(string(rb), "Label the document first.") {
			t.Errorf("unlabeled upload: %d %s", resp.StatusCode, rb)
		}
		ct, body = multipartBody(nil, "plan.docx", "application/octet-stream", docx(t, "x", "Confidential"))
		if resp, _ = post("/upload", ct, body); resp.StatusCode != 200 || len(sh.origin.requests("POST", "/upload")) != 2 {
			t.Errorf("labeled upload: %d", resp.StatusCode)
		}
		// Raw PUT of a file: blocked / passes.
		resp, _ = sh.do(t, m.h2, "PUT", "https://origin.lab/files/cards.txt", strings.NewReader("x "+testCard), "Content-Type", "application/octet-stream")
		if resp.StatusCode != 403 || len(sh.origin.requests("PUT", "/files/cards.txt")) != 0 {
			t.Errorf("raw PUT with card: %d", resp.StatusCode)
		}
		raw := bytes.Repeat([]byte("clean line\n"), 10000)
		resp, _ = sh.do(t, m.h2, "PUT", "https://origin.lab/files/clean.txt", bytes.NewReader(raw), "Content-Type", "application/octet-stream")
		if s := sh.origin.requests("PUT", "/files/clean.txt"); resp.StatusCode != 200 || len(s) != 1 || s[0].sha != sha(raw) {
			t.Errorf("raw PUT clean: %d %+v", resp.StatusCode, s)
		}
		if m.suffix {
			return // wiki.lab and chat.lab are not suffix hosts in this harness
		}
		// Custom activity with body fields: DokuWiki save.
		form := "id=start&do%5Bsave%5D=1&wikitext=card+" + strings.ReplaceAll(testCard, " ", "+")
		resp, rb = sh.do(t, m.h2, "POST", "https://wiki.lab/doku.php", strings.NewReader(form), "Content-Type", "application/x-www-form-urlencoded", "Accept", "text/html")
		if resp.StatusCode != 403 || !strings.Contains(string(rb), "No cards in the wiki.") || len(sh.origin.requests("POST", "/doku.php")) != 0 {
			t.Errorf("wiki save with card: %d %s", resp.StatusCode, rb)
		}
		if rec = sh.recs.find(t, "POST", "/doku.php"); rec.Activity != "edit_page" || rec.Policy != "wiki-edit" || len(rec.Detectors) != 1 {
			t.Errorf("wiki record %+v", rec)
		}
		form = "id=start&do%5Bsave%5D=1&wikitext=hello"
		resp, _ = sh.do(t, m.h2, "POST", "https://wiki.lab/doku.php", strings.NewReader(form), "Content-Type", "application/x-www-form-urlencoded")
		if s := sh.origin.requests("POST", "/doku.php"); resp.StatusCode != 200 || len(s) != 1 || s[0].sha != sha([]byte(form)) {
			t.Errorf("clean wiki save: %d %+v", resp.StatusCode, s)
		}
		// JSON body field: Slack-like text.
		msg := `{"channel":"C1","text":"pay with ` + testCard + `"}`
		resp, rb = sh.do(t, m.h2, "POST", "https://chat.lab/api/chat.postMessage", strings.NewReader(msg), "Content-Type", "application/json", "Sec-Fetch-Mode", "cors")
		if resp.StatusCode != 403 || !strings.Contains(string(rb), "No cards in chat.") {
			t.Errorf("chat with card: %d %s", resp.StatusCode, rb)
		}
		msg = `{"channel":"C1","text":"lunch?"}`
		resp, _ = sh.do(t, m.h2, "POST", "https://chat.lab/api/chat.postMessage", strings.NewReader(msg), "Content-Type", "application/json")
		if s := sh.origin.requests("POST", "/api/chat.postMessage"); resp.StatusCode != 200 || len(s) != 1 || s[0].sha != sha([]byte(msg)) {
			t.Errorf("clean chat: %d %+v", resp.StatusCode, s)
		}
	})
}

// A settings block with a 1 MiB inspection limit: files over it take the
// oversize default (block).
const smallLimit = "settings: {max_inspection_size: 1MiB}\n"

func TestSessionOversize(t *testing.T) {
	forModes(t, smallLimit+sessionPolicies, nil, func(t *testing.T, sh *sessionHarness, m sessionMode) {
		big := bytes.Repeat([]byte("just text, no numbers\n"), 100000) // 2.2 MB
		sh.origin.put("/files/secret-big.txt", "text/plain", "attachment", big)
		resp, body := sh.do(t, m.h2, "GET", "https://origin.lab/files/secret-big.txt", nil)
		assertReplaced(t, resp, body, "secret-big.txt", "Card numbers may not leave.")
		if rec := sh.recs.find(t, "GET", "/files/secret-big.txt"); rec.Inspection != policy.InspectionTooLarge {
			t.Errorf("oversize download inspection %v", rec.Inspection)
		}
		ct, mp := multipartBody(nil, "big.txt", "text/plain", big)
		resp, _ = sh.do(t, m.h2, "POST", "https://origin.lab/upload", bytes.NewReader(mp), "Content-Type", ct)
		if resp.StatusCode != 403 || len(sh.origin.requests("POST", "/upload")) != 0 {
			t.Errorf("oversize upload: %d", resp.StatusCode)
		}
		// Another client is served afterwards.
		sh.origin.put("/files/ok.txt", "text/plain", "attachment", []byte("ok"))
		if _, body = sh.do(t, m.h2, "GET", "https://origin.lab/files/ok.txt", nil); string(body) != "ok" {
			t.Errorf("after oversize: %q", body)
		}
	})
}

// hangingScanner never reads and returns only when its context ends.
type hangingScanner struct{}

func (hangingScanner) Scan(ctx context.Context, r io.Reader, size int64, name string) (bool, string, error) {
	<-ctx.Done()
	return false, "", ctx.Err()
}

func TestSessionScannerTimeout(t *testing.T) {
	forModes(t, sessionPolicies, func(sc *SessionConfig) {
		sc.Scanner, sc.ScanTimeout = hangingScanner{}, 300*time.Millisecond
	}, func(t *testing.T, sh *sessionHarness, m sessionMode) {
		sh.origin.put("/files/scan-me.bin", "application/octet-stream", "", bytes.Repeat([]byte{1, 2, 3}, 100000))
		resp, body := sh.do(t, m.h2, "GET", "https://origin.lab/files/scan-me.bin", nil)
		assertReplaced(t, resp, body, "scan-me.bin", policy.DefaultBlockMessage)
		if rec := sh.recs.find(t, "GET", "/files/scan-me.bin"); rec.Malware != policy.MalwareScanTimeout {
			t.Errorf("malware status %v", rec.Malware)
		}
		if sh.srv.SessionStats().ScanErrors.Load() == 0 {
			t.Error("scan error not counted")
		}
	})
}

// rawRequest writes bytes to the pipeline over TLS and returns the status
// line of the answer.
func rawRequest(t *testing.T, sh *sessionHarness, req string, closeWrite bool) string {
	t.Helper()
	c := sh.client(sh.dest, false)
	tr := c.Transport.(*http.Transport)
	conn, err := tr.DialContext(context.Background(), "tcp", "origin.lab:443")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc := tlsClient(conn, tr)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(tc, req); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		_ = tc.CloseWrite()
	}
	line := make([]byte, 12)
	if _, err := io.ReadFull(tc, line); err != nil {
		return "read: " + err.Error()
	}
	return string(line)
}

func TestSessionMalformedBodiesAreTheClientsError(t *testing.T) {
	sh := newSessionHarness(t, sessionPolicies, false, nil)
	ct, good := multipartBody(nil, "a.txt", "text/plain", []byte("hello"))
	head := "POST /upload HTTP/1.1\r\nHost: origin.lab\r\nContent-Type: " + ct + "\r\n"
	for name, tc := range map[string]struct {
		req        string
		closeWrite bool
	}{
		"truncated multipart": {head + "Content-Length: 60\r\n\r\n" + string(good[:60]), false},
		"never-closing boundary": {head + "Content-Length: " + itoa(uint16(len(good)-4)) + "\r\n\r\n" +
			strings.Replace(string(good), "--\r\n", "\r\n", 1)[:len(good)-4], false},
		"lying Content-Length": {head + "Content-Length: 5000\r\n\r\n" + string(good), true},
		"huge part header":     {head + "Content-Length: 70100\r\n\r\n" + "--x\r\nX: " + strings.Repeat("a", 70000), true},
		"raw upload short":     {"PUT /files/a.bin HTTP/1.1\r\nHost: origin.lab\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\nabc", true},
	} {
		t.Run(name, func(t *testing.T) {
			if got := rawRequest(t, sh, tc.req, tc.closeWrite); got != "HTTP/1.1 400" {
				t.Errorf("status line %q, want HTTP/1.1 400", got)
			}
		})
	}
	if n := len(sh.origin.requests("POST", "/upload")); n != 0 {
		t.Errorf("origin saw %d malformed uploads", n)
	}
	// Still serving.
	_, body := sh.do(t, false, "POST", "https://origin.lab/upload", bytes.NewReader(good), "Content-Type", ct)
	if !strings.Contains(string(body), `"ok":true`) {
		t.Errorf("after malformed bodies: %s", body)
	}
}

// The record made at the last byte (audit hold) carries the streamed
// inspection's result.
func TestSessionStreamedResultIsOnTheHeldRecord(t *testing.T) {
	sh := newSessionHarness(t, sessionPolicies, false, nil)
	body := append(bytes.Repeat([]byte("filler text\n"), 50000), []byte("card "+testCard+"\n")...)
	sh.origin.put("/files/watched-big.txt", "text/plain", "attachment", body)
	_, got := sh.do(t, false, "GET", "https://origin.lab/files/watched-big.txt", nil)
	if !bytes.Equal(got, body) {
		t.Fatal("monitored download altered")
	}
	rec := sh.recs.find(t, "GET", "/files/watched-big.txt")
	if len(rec.Detectors) != 1 || rec.File == nil || rec.File.SHA256 != sha(body) || rec.Inspection != policy.InspectionDone {
		t.Errorf("held record %+v file %+v", rec, rec.File)
	}
	if sh.srv.SessionStats().Streamed.Load() == 0 {
		t.Error("not counted as streamed")
	}
}

var _ session.Scanner = hangingScanner{}
var _ = net.Dial
