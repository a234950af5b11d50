package browser

import (
	"testing"

	"github.com/chromedp/cdproto/network"
)

func TestNetLogRedirectAndAssertions(t *testing.T) {
	l := newNetLog()
	l.listen(&network.EventRequestWillBeSent{RequestID: "1", Type: "Document",
		Request: &network.Request{URL: "https://a.gw.test/old", Method: "GET"}})
	l.listen(&network.EventRequestWillBeSent{RequestID: "1", Type: "Document",
		Request:          &network.Request{URL: "https://evil.example/", Method: "GET"},
		RedirectResponse: &network.Response{Status: 302}})
	l.listen(&network.EventResponseReceived{RequestID: "1", Response: &network.Response{Status: 500}})
	l.listen(&network.EventRequestWillBeSent{RequestID: "2", Type: "Fetch",
		Request: &network.Request{URL: "https://b.gw.test/api", Method: "POST"}})
	l.listen(&network.EventLoadingFailed{RequestID: "2", ErrorText: "net::ERR_CONNECTION_RESET"})
	l.listen(&network.EventRequestWillBeSent{RequestID: "3", Type: "Image",
		Request: &network.Request{URL: "data:image/png;base64,AAAA", Method: "GET"}})
	l.listen(&network.EventRequestWillBeSent{RequestID: "4", Type: "Script",
		Request: &network.Request{URL: "https://c.gw.test/x.js", Method: "GET"}})
	l.listen(&network.EventLoadingFailed{RequestID: "4", ErrorText: "net::ERR_ABORTED", Canceled: true})
	l.listen(&network.EventWebSocketCreated{RequestID: "5", URL: "wss://gw.test/ws"})

	e := l.Entries()
	if len(e) != 6 {
		t.Fatalf("entries = %d, want 6: %+v", len(e), e)
	}
	if e[0].Status != 302 || e[0].RedirectedTo != "https://evil.example/" || e[1].Status != 500 {
		t.Errorf("redirect chain recorded wrong: %+v %+v", e[0], e[1])
	}

	hosts := &recorder{TB: t}
	l.AssertAllHostsUnder(hosts, "gw.test")
	// evil.example and the bare suffix gw.test are outside; data: is ignored.
	if len(hosts.errs) != 2 {
		t.Errorf("AssertAllHostsUnder reported %d problems, want 2: %q", len(hosts.errs), hosts.errs)
	}
	fails := &recorder{TB: t}
	l.AssertNoFailures(fails)
	// the 500 and the reset; the canceled script is not a failure.
	if len(fails.errs) != 2 {
		t.Errorf("AssertNoFailures reported %d problems, want 2: %q", len(fails.errs), fails.errs)
	}
	allowed := &recorder{TB: t}
	l.AssertNoFailures(allowed, 500)
	if len(allowed.errs) != 1 {
		t.Errorf("AssertNoFailures with 500 allowed reported %d problems, want 1: %q", len(allowed.errs), allowed.errs)
	}
	l.Reset()
	if len(l.Entries()) != 0 {
		t.Error("Reset kept entries")
	}
}
