package control_test

import (
	"io"
	"log"
	"net/http"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/session/control"
)

// The proxy's request path, reduced to the control parts: the endpoints
// first, the notice on a navigation, the script in HTML responses.
func Example() {
	ctl, err := control.New(control.Config{Key: make([]byte, 32)}) // the appliance secret
	if err != nil {
		log.Fatal(err)
	}
	origin := func(r *http.Request) *http.Response { return nil } // the upstream round trip
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ctl.ServeEndpoint(w, r, func(rep control.Report) {
			// Decide the attempt as an activity (SessionRequest.Kind =
			// rep.Kind) and record the event.
			log.Printf("%s %s blocked=%v", rep.Kind, rep.URL, rep.Blocked)
		}) {
			return
		}
		if ctl.NeedsNotice(r, "mail") {
			ctl.RedirectToNotice(w, r, "mail", "This session is monitored.")
			return
		}
		session := ctl.Session(w, r)
		resp := origin(r)
		rules := control.Rules{
			CutCopy: control.ModeFor(policy.ActionBlock),
			Print:   control.ModeFor(policy.ActionMonitor),
			Message: "Copying is not allowed in this app.",
		}
		body, err := ctl.Inject(resp.Header, resp.Body, r.Host, rules, session)
		if err != nil {
			// Not injectable (control.ErrNotHTML...): serve as it is, or
			// refuse when a block rule must hold; count it either way.
			log.Printf("control script: %v", err)
		}
		defer body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, body)
	})
	_ = handler
}
