package dokuwiki

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/internal/lab/browser"
)

// TestWikiInChromium drives the wiki the way a user does, in headless
// Chromium from the client namespace: log in, edit and save a page, upload
// an image with the media manager, download it and compare the bytes.
func TestWikiInChromium(t *testing.T) {
	l := newWikiLab(t)
	w := l.wiki
	b := browser.Start(t, browser.Options{NS: l.client, TrustPEM: [][]byte{l.ca.PEM}})
	tab, netlog := b.NewTab(t)

	step := func(name string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(tab, timeout)
		defer cancel()
		start := time.Now()
		if err := chromedp.Do(ctx, steps...); err != nil {
			loc, _ := chromedp.Run(tab, chromedp.Location())
			t.Fatalf("%s: %v (page %s)", name, err, loc)
		}
		t.Logf("%s: %v", name, time.Since(start).Round(time.Millisecond))
	}

	step("log in", 15*time.Second,
		chromedp.Navigate(w.URL+"doku.php?id=start&do=login"),
		chromedp.WaitVisible(chromedp.CSS(`#dw__login input[name="u"]`)),
		chromedp.SendKeys(chromedp.CSS(`#dw__login input[name="u"]`), w.AdminUser),
		chromedp.SendKeys(chromedp.CSS(`#dw__login input[name="p"]`), w.AdminPassword),
		chromedp.Click(chromedp.CSS(`#dw__login button[type="submit"]`)),
		chromedp.WaitReady(chromedp.CSS(`a[href*="do=logout"]`)),
	)

	text := "====== Edited in Chromium ======\n\nmarker " + randHex(6) + "\n"
	step("edit and save", 15*time.Second,
		chromedp.Navigate(w.URL+"doku.php?id=lab:browser&do=edit"),
		chromedp.WaitVisible(chromedp.CSS(`#wiki__text`)),
		chromedp.SetValue(chromedp.CSS(`#wiki__text`), text),
		chromedp.Click(chromedp.CSS(`#edbtn__save`)),
		chromedp.WaitReady(chromedp.CSS(`h1#edited_in_chromium`)),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := RawPage(ctx, w.Client(), w.URL, "lab:browser")
	if err != nil || strings.TrimSpace(raw) != strings.TrimSpace(text) {
		t.Errorf("page text read back = %q, %v; want %q", raw, err, text)
	}

	img := testPNG(t)
	file := filepath.Join(t.TempDir(), "lab-upload.png")
	if err := os.WriteFile(file, img, 0o644); err != nil {
		t.Fatal(err)
	}
	step("upload with the media manager", 20*time.Second,
		chromedp.Navigate(w.URL+"doku.php?id=lab:browser&do=media&ns=lab&tab_files=upload"),
		chromedp.WaitReady(chromedp.CSS(`#mediamanager__uploader input[type="file"]`)),
		chromedp.SetUploadFiles(chromedp.CSS(`#mediamanager__uploader input[type="file"]`), []string{file}),
		chromedp.WaitVisible(chromedp.CSS(`#mediamanager__upload_button`)),
		chromedp.Click(chromedp.CSS(`#mediamanager__upload_button`)),
		chromedp.WaitReady(chromedp.CSS(`#mediamanager__uploader .qq-upload-success`)),
	)
	stored, err := os.ReadFile(filepath.Join(w.DataDir, "media", "lab", "lab-upload.png"))
	if err != nil || !bytes.Equal(stored, img) {
		t.Errorf("uploaded file in the savedir: %d bytes, %v; want the %d bytes sent", len(stored), err, len(img))
	}

	// Download through the page's own fetch(), so the request carries the
	// browser's session and shows in its network log.
	dctx, dcancel := context.WithTimeout(tab, 15*time.Second)
	defer dcancel()
	b64, err := chromedp.Run(dctx, chromedp.Evaluate[string](`fetch(`+jsString(MediaURL(w.URL, "lab:lab-upload.png"))+`)
		.then(r => { if (!r.ok) throw new Error('status ' + r.status); return r.arrayBuffer(); })
		.then(buf => { let s = ''; for (const b of new Uint8Array(buf)) s += String.fromCharCode(b); return btoa(s); })`,
		func(p *runtime.EvaluateParams) { p.AwaitPromise = new(true) }))
	if err != nil {
		t.Fatalf("download in the browser: %v", err)
	}
	got, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || !bytes.Equal(got, img) {
		t.Errorf("downloaded %d bytes (%v), want the %d uploaded bytes back", len(got), err, len(img))
	}

	netlog.AssertAllHostsUnder(t, "lab")
	netlog.AssertNoFailures(t)
	var uploads, downloads int
	for _, e := range netlog.Entries() {
		if strings.Contains(e.URL, "call=mediaupload") && e.Method == "POST" && e.Status == 200 {
			uploads++
		}
		if strings.Contains(e.URL, "fetch.php?media=lab%3Alab-upload.png") && e.Status == 200 {
			downloads++
		}
	}
	if uploads != 1 || downloads == 0 {
		t.Errorf("netlog: %d upload POSTs and %d downloads, want 1 and at least 1", uploads, downloads)
	}
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}
