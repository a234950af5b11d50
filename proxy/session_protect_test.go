package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/session"
)

// fakeProtector "protects" PDFs by prefixing them and refuses the rest.
type fakeProtector struct{}

func (fakeProtector) Protect(dst io.Writer, src io.ReaderAt, size int64, mime string, p *policy.Protect) (bool, bool, error) {
	if mime != "application/pdf" {
		return false, false, fmt.Errorf("%s: %w", mime, session.ErrUnsupported)
	}
	_, _ = io.WriteString(dst, "PROTECTED:"+p.Label+":")
	_, err := io.Copy(dst, io.NewSectionReader(src, 0, size))
	return true, false, err
}

func TestSessionProtectStepUpAndAlerts(t *testing.T) {
	const pols = `
session_policies:
  - {id: prot, filters: {apps: [origin-lab]}, control: download, files: {names: ["prot-*"]}, action: protect, protect: {label: Confidential}, alert: true}
  - {id: prot-allow, filters: {apps: [origin-lab]}, control: download, files: {names: ["lenient-*"]}, action: protect, protect: {label: Confidential, unsupported: allow}}
  - {id: step, filters: {apps: [origin-lab]}, control: download, files: {names: ["step-*"]}, action: require_step_up}
`
	var alerts atomic.Int64
	forModes(t, pols, func(sc *SessionConfig) {
		sc.Protector = fakeProtector{}
		sc.Alert = func(ci *ConnInfo, r *http.Request, req *policy.SessionRequest, d *policy.SessionDecision) {
			alerts.Add(1)
		}
	}, func(t *testing.T, sh *sessionHarness, m sessionMode) {
		pdf := pdfWithText("hello")
		sh.origin.put("/files/prot-a.pdf", "application/pdf", "", pdf)
		sh.origin.put("/files/prot-a.bin", "application/octet-stream", "", []byte("binary"))
		sh.origin.put("/files/lenient-a.bin", "application/octet-stream", "", []byte("binary"))
		sh.origin.put("/files/step-a.pdf", "application/pdf", "", pdf)
		before := alerts.Load()
		resp, body := sh.do(t, m.h2, "GET", "https://origin.lab/files/prot-a.pdf", nil)
		if want := append([]byte("PROTECTED:Confidential:"), pdf...); !bytes.Equal(body, want) || resp.ContentLength != int64(len(want)) {
			t.Errorf("protected body %q (CL %d)", body[:min(len(body), 40)], resp.ContentLength)
		}
		if rec := sh.recs.find(t, "GET", "/files/prot-a.pdf"); rec.Action != policy.ActionProtect || rec.Decision != "protect" {
			t.Errorf("protect record %+v", rec)
		}
		resp, body = sh.do(t, m.h2, "GET", "https://origin.lab/files/prot-a.bin", nil)
		assertReplaced(t, resp, body, "prot-a.bin", "cannot be protected")
		if _, body = sh.do(t, m.h2, "GET", "https://origin.lab/files/lenient-a.bin", nil); string(body) != "binary" {
			t.Errorf("unsupported allow: %q", body)
		}
		resp, body = sh.do(t, m.h2, "GET", "https://origin.lab/files/step-a.pdf", nil)
		assertReplaced(t, resp, body, "step-a.pdf", "")
		if rec := sh.recs.find(t, "GET", "/files/step-a.pdf"); rec.Action != policy.ActionBlock {
			t.Errorf("step-up record %+v", rec)
		}
		waitFor(t, func() bool { return alerts.Load() >= before+2 })
	})
}
