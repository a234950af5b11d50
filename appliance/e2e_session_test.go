package appliance

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/internal/lab/scanners"
	"github.com/portcullis-gw/portcullis/internal/lab/testdocs"
	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// sessionPolicies are the session controls the DokuWiki test enforces.
const sessionPolicies = `session_policies:
  - id: no-card-downloads
    filters: {apps: [dokuwiki]}
    control: download
    content: {detectors: [{id: credit_card}]}
    action: block
    message: Files with card numbers cannot be downloaded.
  - id: protect-pdf
    filters: {apps: [dokuwiki]}
    control: download
    files: {extensions: [pdf]}
    action: protect
    protect: {label: Confidential, encrypt: true}
  - id: no-malware-uploads
    filters: {apps: [dokuwiki]}
    control: upload
    malware: true
    action: block
    message: This file contains malware and was not uploaded.
  - id: label-before-upload
    filters: {apps: [dokuwiki]}
    control: upload
    files: {extensions: [docx], label: absent}
    action: block
    message: Label the document in Word (Home > Sensitivity) before you upload it.
  - id: no-card-edits
    filters: {apps: [dokuwiki]}
    control: block_activities
    activities: [edit_page]
    content: {detectors: [{id: credit_card}]}
    action: block
    message: Card numbers must not be written into the wiki.
`

// protectPassword opens files the protect policy encrypted (pdfcpu's
// reader refuses spaces in passwords, so it has none).
const protectPassword = "Lab-Protect_Password.2026"

// TestE2ESessionControlsDokuWiki drives the real DokuWiki in headless
// Chromium through the appliance, transparently and through the suffix
// proxy, with every file control enforced on the bodies themselves: a
// media file with a card number is replaced by a .blocked.txt file naming
// the policy's message, a clean one arrives byte for byte, a PDF arrives
// encrypted (AES-256, label in its metadata), EICAR never reaches the wiki
// and clamd logged it, an unlabeled docx is refused and a labeled one
// stored, an edit with a card number is refused and a clean edit saved.
// Every block is in the activity log with app, activity, file, policy and
// reason.
func TestE2ESessionControlsDokuWiki(t *testing.T) {
	sock := scanners.StartClamd(t)
	clamdLog := filepath.Join(filepath.Dir(sock), "clamd.log")
	for _, suffix := range []bool{false, true} {
		name := map[bool]string{false: "transparent", true: "suffix"}[suffix]
		t.Run(name, func(t *testing.T) { testSessionControls(t, suffix, sock, clamdLog) })
	}
}

func testSessionControls(t *testing.T, suffix bool, clamdSock, clamdLog string) {
	pwFile := filepath.Join(t.TempDir(), "protect.pw")
	if err := os.WriteFile(pwFile, []byte(protectPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("session:\n  protect:\n    password_file: %s\n  malware:\n    clamd:\n      address: unix:%s\n", pwFile, clamdSock)
	wl := newWikiLab(t, suffix, sessionPolicies, extra)
	wl.withLogin(t)
	// txt media are served as attachments ("!" forces the download).
	if err := os.WriteFile(filepath.Join(wl.wiki.Dir, "conf", "mime.local.conf"), []byte("txt !text/plain\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cards := []byte("Customer list\nVisa 4111 1111 1111 1111 exp 12/29\n")
	clean := []byte("Meeting notes: nothing sensitive here.\n")
	report := testdocs.PDF("Quarterly report", "Revenue grew by four percent.")
	wl.putMedia(t, "lab", "cards.txt", cards)
	wl.putMedia(t, "lab", "clean.txt", clean)
	wl.putMedia(t, "lab", "report.pdf", report)

	wl.start()
	defer wl.stop(syscall.SIGTERM)
	b := wl.browser(t)
	tab, _ := b.NewTab(t)
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(tab, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
		BrowserContextID: chromedp.FromContext(tab).BrowserContextID}); err != nil {
		t.Fatal(err)
	}
	wl.signIn(t, tab, "alice", "alice-pw")
	wl.login(t, tab)

	t.Run("download with a card number is replaced", func(t *testing.T) {
		name, got := browserDownload(t, wl, tab, downloads, wl.base+"lib/exe/fetch.php?media=lab:cards.txt")
		if name != "cards.txt.blocked.txt" || !strings.Contains(string(got), "Files with card numbers cannot be downloaded.") || bytes.Contains(got, []byte("4111")) {
			t.Fatalf("downloaded %q: %q", name, got)
		}
	})
	t.Run("clean download arrives byte for byte", func(t *testing.T) {
		name, got := browserDownload(t, wl, tab, downloads, wl.base+"lib/exe/fetch.php?media=lab:clean.txt")
		if name != "clean.txt" || !bytes.Equal(got, clean) {
			t.Fatalf("downloaded %q: %q", name, got)
		}
	})
	t.Run("PDF arrives protected", func(t *testing.T) {
		got := fetchInPage(t, tab, wl.base+"lib/exe/fetch.php?media=lab:report.pdf")
		if bytes.Equal(got, report) || filetype.Detect(got) != filetype.PDF {
			t.Fatalf("the PDF was not transformed (%d bytes)", len(got))
		}
		if err := api.Validate(bytes.NewReader(got), model.NewDefaultConfiguration()); err == nil {
			t.Fatal("the protected PDF opens without a password")
		}
		conf := model.NewDefaultConfiguration()
		conf.UserPW, conf.OwnerPW = protectPassword, protectPassword
		ctx, err := api.ReadContext(bytes.NewReader(got), conf)
		if err != nil {
			t.Fatalf("open with the password: %v", err)
		}
		enc, err := ctx.EncryptDict()
		if err != nil {
			t.Fatal(err)
		}
		if v, r := enc.IntEntry("V"), enc.IntEntry("R"); v == nil || *v != 5 || r == nil || *r != 6 {
			t.Fatalf("encryption dictionary %v, want AES-256 (V 5, R 6)", enc)
		}
		var plain bytes.Buffer
		if err := api.Decrypt(bytes.NewReader(got), &plain, conf); err != nil {
			t.Fatalf("decrypt: %v", err)
		}
		var text bytes.Buffer
		info, err := filetype.ExtractPDF(bytes.NewReader(plain.Bytes()), int64(plain.Len()), &text, filetype.Limits{})
		if err != nil || info.LabelName() != "Confidential" || !strings.Contains(text.String(), "Quarterly report") {
			t.Fatalf("decrypted PDF: label %q text %q, %v", info.LabelName(), text.String(), err)
		}
	})

	upload := func(t *testing.T, name string, data []byte) bool {
		t.Helper()
		file := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		wl.step(t, tab, "open the media manager",
			chromedp.Navigate(wl.base+"doku.php?id=lab:start&do=media&ns=lab&tab_files=upload"),
			chromedp.WaitReady(chromedp.CSS(`#mediamanager__uploader input[type="file"]`)),
			chromedp.SetUploadFiles(chromedp.CSS(`#mediamanager__uploader input[type="file"]`), []string{file}),
			chromedp.WaitVisible(chromedp.CSS(`#mediamanager__upload_button`)),
			chromedp.Click(chromedp.CSS(`#mediamanager__upload_button`)),
			chromedp.WaitReady(chromedp.CSS(`#mediamanager__uploader .qq-upload-success, #mediamanager__uploader .qq-upload-fail`)),
		)
		stored, err := os.ReadFile(filepath.Join(wl.wiki.DataDir, "media", "lab", name))
		return err == nil && bytes.Equal(stored, data)
	}
	t.Run("EICAR upload is blocked and clamd saw it", func(t *testing.T) {
		if upload(t, "eicar.txt", scanners.EICAR()) {
			t.Fatal("EICAR reached the wiki")
		}
		if b, _ := os.ReadFile(clamdLog); !strings.Contains(string(b), "FOUND") {
			t.Fatalf("clamd logged no detection:\n%s", b)
		}
	})
	t.Run("unlabeled docx is blocked, labeled passes", func(t *testing.T) {
		if upload(t, "plan.docx", testdocs.DOCX("", "Project plan")) {
			t.Fatal("the unlabeled docx reached the wiki")
		}
		if !upload(t, "plan-labeled.docx", testdocs.DOCX("General", "Project plan")) {
			t.Fatalf("the labeled docx did not reach the wiki\n%s", wl.log())
		}
	})
	t.Run("edit with a card number is blocked, a clean edit saves", func(t *testing.T) {
		edit := func(text string, wait chromedp.Action[chromedp.Void]) {
			wl.step(t, tab, "edit",
				chromedp.Navigate(wl.base+"doku.php?id=lab:notes&do=edit"),
				chromedp.WaitVisible(chromedp.CSS(`#wiki__text`)),
				chromedp.SetValue(chromedp.CSS(`#wiki__text`), text),
				chromedp.Click(chromedp.CSS(`#edbtn__save`)),
				wait,
			)
		}
		edit("====== Notes ======\n\npay with 4111 1111 1111 1111\n", waitText("Card numbers must not be written into the wiki."))
		page := filepath.Join(wl.wiki.DataDir, "pages", "lab", "notes.txt")
		if _, err := os.Stat(page); err == nil {
			t.Fatal("the edit with a card number was saved")
		}
		edit("====== Notes ======\n\nnothing to hide\n", chromedp.WaitReady(chromedp.CSS(`h1#notes`)))
		if b, err := os.ReadFile(page); err != nil || !strings.Contains(string(b), "nothing to hide") {
			t.Fatalf("the clean edit was not saved: %q %v", b, err)
		}
	})

	wl.stop(syscall.SIGTERM)
	st, err := activity.Open(filepath.Join(wl.dir, "state", "activity.db"), activity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, want := range []struct{ policy, activity, file string }{
		{"no-card-downloads", "fetch_media", "cards.txt"},
		{"no-malware-uploads", "upload_media", "eicar.txt"},
		{"label-before-upload", "upload_media", "plan.docx"},
		{"no-card-edits", "edit_page", ""},
	} {
		page, err := st.Search(activity.Query{Policy: want.policy, Action: "block"})
		if err != nil || len(page.Events) == 0 {
			t.Errorf("no block event for %s: %v", want.policy, err)
			continue
		}
		ev := page.Events[0]
		if ev.User != "alice" || ev.App != "dokuwiki" || ev.Activity != want.activity || ev.FileName != want.file || ev.Reason == "" ||
			want.file != "" && (ev.FileSHA256 == "" || ev.FileSize <= 0) {
			t.Errorf("%s: event %+v", want.policy, ev)
		}
		if want.policy == "no-card-downloads" && (len(ev.Detectors) == 0 || ev.Detectors[0].ID != "credit_card" ||
			strings.Contains(strings.Join(ev.Detectors[0].Samples, ""), "4111 1111 1111 1111")) {
			t.Errorf("the download's event lacks the masked detector: %+v", ev.Detectors)
		}
	}
	if page, _ := st.Search(activity.Query{Policy: "protect-pdf", Action: "protect"}); len(page.Events) == 0 || page.Events[0].FileName != "report.pdf" {
		t.Errorf("no protect event for the PDF: %+v", page.Events)
	}
}

// browserDownload makes Chromium download url (a link click, as a user
// would) and returns the saved file's name and bytes.
func browserDownload(t *testing.T, wl *wikiLab, tab context.Context, dir, url string) (string, []byte) {
	t.Helper()
	before := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		before[e.Name()] = true
	}
	wl.step(t, tab, "click a download link", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const a = document.createElement('a'); a.href = %q; document.body.appendChild(a); a.click(); return true })()`, url))(ctx, tg)
		return err
	}))
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if before[e.Name()] || strings.HasSuffix(e.Name(), ".crdownload") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil {
				return e.Name(), b
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no download of %s arrived in %s\n%s", url, dir, wl.log())
	return "", nil
}

// fetchInPage fetches url from the page (the browser's cookies, TLS and
// proxying) and returns the body.
func fetchInPage(t *testing.T, tab context.Context, url string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	b64, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(`+fmt.Sprintf("%q", url)+`)
		.then(r => { if (!r.ok) throw new Error('status ' + r.status); return r.arrayBuffer(); })
		.then(buf => { let s = ''; for (const b of new Uint8Array(buf)) s += String.fromCharCode(b); return btoa(s); })`,
		func(p *runtime.EvaluateParams) { p.AwaitPromise = new(true) }))
	if err != nil {
		t.Fatalf("fetch %s: %v", url, err)
	}
	out, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
