package appliance

import (
	"bytes"
	"context"
	"encoding/base64"
	"image"
	"image/color"
	"image/png"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// wikiAddr is DokuWiki's address, in a namespace of its own behind the
// gateway (the e2e origin namespace already serves :443 on all addresses).
var wikiAddr = netip.MustParseAddr("198.18.7.2")

// TestE2EDokuWikiThroughSuffix is the real app behind the suffix proxy: in
// headless Chromium, log in, edit a page, upload a media file and download
// it again, all at wiki.lab.gw.test; the browser's network log shows every
// request stayed under the suffix and none failed.
func TestE2EDokuWikiThroughSuffix(t *testing.T) {
	wl := newWikiLab(t, true, "", "")
	l, w := wl.e2eLab, wl.wiki
	l.start()
	defer l.stop(syscall.SIGTERM)
	b := wl.browser(t)
	tab, netlog := b.NewTab(t)
	base := wl.base
	step := func(name string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		wl.step(t, tab, name, steps...)
	}
	wl.login(t, tab)
	page := "====== Edited through the gateway ======\n\nsaved at wiki.lab.gw.test\n"
	step("edit and save",
		chromedp.Navigate(base+"doku.php?id=lab:gateway&do=edit"),
		chromedp.WaitVisible(chromedp.CSS(`#wiki__text`)),
		chromedp.SetValue(chromedp.CSS(`#wiki__text`), page),
		chromedp.Click(chromedp.CSS(`#edbtn__save`)),
		chromedp.WaitReady(chromedp.CSS(`h1#edited_through_the_gateway`)),
	)
	stored, err := os.ReadFile(filepath.Join(w.DataDir, "pages", "lab", "gateway.txt"))
	if err != nil || strings.TrimSpace(string(stored)) != strings.TrimSpace(page) {
		t.Errorf("saved page = %q, %v", stored, err)
	}

	img := labPNG(t)
	file := filepath.Join(t.TempDir(), "gw-upload.png")
	if err := os.WriteFile(file, img, 0o644); err != nil {
		t.Fatal(err)
	}
	step("upload with the media manager",
		chromedp.Navigate(base+"doku.php?id=lab:gateway&do=media&ns=lab&tab_files=upload"),
		chromedp.WaitReady(chromedp.CSS(`#mediamanager__uploader input[type="file"]`)),
		chromedp.SetUploadFiles(chromedp.CSS(`#mediamanager__uploader input[type="file"]`), []string{file}),
		chromedp.WaitVisible(chromedp.CSS(`#mediamanager__upload_button`)),
		chromedp.Click(chromedp.CSS(`#mediamanager__upload_button`)),
		chromedp.WaitReady(chromedp.CSS(`#mediamanager__uploader .qq-upload-success`)),
	)
	got, err := os.ReadFile(filepath.Join(w.DataDir, "media", "lab", "gw-upload.png"))
	if err != nil || !bytes.Equal(got, img) {
		t.Errorf("uploaded file: %d bytes, %v; want the %d bytes sent", len(got), err, len(img))
	}
	dctx, cancel := context.WithTimeout(tab, 15*time.Second)
	defer cancel()
	b64, err := chromedp.Run(dctx, chromedp.Evaluate[string](`fetch('`+base+`lib/exe/fetch.php?media=lab:gw-upload.png')
		.then(r => { if (!r.ok) throw new Error('status ' + r.status); return r.arrayBuffer(); })
		.then(buf => { let s = ''; for (const b of new Uint8Array(buf)) s += String.fromCharCode(b); return btoa(s); })`,
		func(p *runtime.EvaluateParams) { p.AwaitPromise = new(true) }))
	if err != nil {
		t.Fatalf("download in the browser: %v", err)
	}
	if down, err := base64.StdEncoding.DecodeString(b64); err != nil || !bytes.Equal(down, img) {
		t.Errorf("downloaded %d bytes (%v), want the %d uploaded bytes back", len(down), err, len(img))
	}

	netlog.AssertAllHostsUnder(t, "gw.test")
	netlog.AssertNoFailures(t)
	var uploads int
	for _, e := range netlog.Entries() {
		if strings.Contains(e.URL, "call=mediaupload") && e.Method == "POST" && e.Status == 200 {
			uploads++
		}
	}
	if uploads != 1 {
		t.Errorf("network log: %d upload POSTs, want 1", uploads)
	}
	l.waitAccessLog(t, func(m map[string]any) bool {
		return m["mode"] == "suffix" && m["host"] == "wiki.lab" && m["method"] == "POST" && m["path"] == "/lib/exe/ajax.php"
	})
}

// labPNG is a small image with a fixed pattern.
func labPNG(t *testing.T) []byte {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, 48, 32))
	for y := range 32 {
		for x := range 48 {
			m.Set(x, y, color.RGBA{uint8(x * 5), uint8(y * 7), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
