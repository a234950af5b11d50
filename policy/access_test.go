package policy

import (
	"fmt"
	"testing"
)

const accessTags = `
ip_tags:
  - {id: corporate, ranges: [198.18.0.0/24, "2001:db8::/32"]}
  - {id: risky, ranges: [203.0.113.7]}
device_tags: [{id: managed}]
`

func TestAccessFilters(t *testing.T) {
	alice := Subject{User: "Alice@Corp.Example", Groups: []string{"eng", "staff"}, DeviceTags: []string{"compliant"},
		SourceIP: ip("198.18.0.10")}
	native := alice
	native.ClientApp = ClientMobileDesktop
	old := alice
	old.UATags = []string{UAOutdatedBrowser}
	v6 := alice
	v6.SourceIP = ip("2001:db8::1")
	mapped := alice
	mapped.SourceIP = ip("::ffff:198.18.0.10")
	risky := alice
	risky.SourceIP = ip("203.0.113.7")
	tests := []struct {
		name    string
		filters string
		host    string
		subj    Subject
		want    bool
	}{
		{"no filters matches any catalog app", `{}`, "slack.com", alice, true},
		{"host outside the catalog never matches", `{}`, "example.org", alice, false},
		{"apps any_of hit", `{apps: [slack]}`, "app.slack.com", alice, true},
		{"apps any_of miss", `{apps: [box]}`, "slack.com", alice, false},
		{"apps none_of", `{apps: {none_of: [slack]}}`, "slack.com", alice, false},
		{"apps none_of other", `{apps: {none_of: [box]}}`, "slack.com", alice, true},
		{"users case-insensitive", `{users: [alice@corp.example]}`, "slack.com", alice, true},
		{"users miss", `{users: [bob@corp.example]}`, "slack.com", alice, false},
		{"users none_of", `{users: {none_of: [ALICE@corp.example]}}`, "slack.com", alice, false},
		{"groups one of", `{groups: [contractors, eng]}`, "slack.com", alice, true},
		{"groups miss", `{groups: [contractors]}`, "slack.com", alice, false},
		{"groups none_of", `{groups: {none_of: [staff]}}`, "slack.com", alice, false},
		{"groups any and none", `{groups: {any_of: [eng], none_of: [interns]}}`, "slack.com", alice, true},
		{"device tags present", `{device_tags: [compliant]}`, "slack.com", alice, true},
		{"device tags missing", `{device_tags: [valid_client_certificate]}`, "slack.com", alice, false},
		{"device tags none_of", `{device_tags: {none_of: [compliant, managed]}}`, "slack.com", alice, false},
		{"browser by default", `{}`, "slack.com", native, false},
		{"explicit native", `{client_apps: [mobile_desktop]}`, "slack.com", native, true},
		{"explicit native excludes browser", `{client_apps: [mobile_desktop]}`, "slack.com", alice, false},
		{"client none_of browser", `{client_apps: {none_of: [browser]}}`, "slack.com", native, true},
		{"ua tags", `{user_agent_tags: [outdated_browser, outdated_os]}`, "slack.com", old, true},
		{"ua tags miss", `{user_agent_tags: [outdated_browser]}`, "slack.com", alice, false},
		{"ip range", `{ip_ranges: [198.18.0.0/16]}`, "slack.com", alice, true},
		{"ip range v4-mapped", `{ip_ranges: [198.18.0.0/16]}`, "slack.com", mapped, true},
		{"ip range miss", `{ip_ranges: [192.0.2.0/24]}`, "slack.com", alice, false},
		{"ip range none_of", `{ip_ranges: {none_of: [198.18.0.10]}}`, "slack.com", alice, false},
		{"ip tag", `{ip_tags: [corporate]}`, "slack.com", alice, true},
		{"ip tag v6", `{ip_tags: [corporate]}`, "slack.com", v6, true},
		{"ip tag single address", `{ip_tags: [risky]}`, "slack.com", risky, true},
		{"ip tag none_of", `{ip_tags: {none_of: [corporate]}}`, "slack.com", alice, false},
		{"ip tag unknown address", `{ip_tags: [corporate]}`, "slack.com", Subject{}, false},
		{"all filters together", `{apps: [slack], users: [alice@corp.example], groups: [eng], device_tags: [compliant],
			client_apps: [browser], ip_tags: [corporate]}`, "slack.com", alice, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, accessTags+fmt.Sprintf("access_policies:\n  - {id: p, filters: %s, action: block}\n", tc.filters))
			d := e.Access(&AccessRequest{Host: tc.host, Subject: tc.subj})
			if got := len(d.Matches) == 1; got != tc.want {
				t.Fatalf("matched = %v, want %v", got, tc.want)
			}
			if tc.want && (d.Action != ActionBlock || d.WinningPolicy().ID != "p") {
				t.Fatalf("decision %v by %v", d.Action, d.WinningPolicy())
			}
		})
	}
}

func TestAccessActionsAndPrecedence(t *testing.T) {
	tests := []struct {
		name    string
		actions []string
		want    string
		winner  int
	}{
		{"nothing matches: allow", nil, "allow", -1},
		{"allow", []string{"allow"}, "allow", 0},
		{"monitor", []string{"monitor"}, "monitor", 0},
		{"block", []string{"block"}, "block", 0},
		{"block beats allow", []string{"allow", "block"}, "block", 1},
		{"block beats monitor", []string{"block", "monitor"}, "block", 0},
		{"monitor beats allow", []string{"allow", "monitor", "allow"}, "monitor", 1},
		{"first of equals wins", []string{"monitor", "block", "block"}, "block", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One group per policy keeps the filters distinct (no conflict);
			// the request is in every group, so all policies match.
			req := &AccessRequest{Host: "slack.com"}
			src := "access_policies:\n"
			for i, a := range tc.actions {
				src += fmt.Sprintf("  - {id: p%d, filters: {groups: [g%d]}, action: %s, message: m%d}\n", i, i, a, i)
				req.Groups = append(req.Groups, fmt.Sprintf("g%d", i))
			}
			var d AccessDecision
			mustEngine(t, src).AccessInto(req, &d)
			if d.Action.String() != tc.want {
				t.Fatalf("action %s, want %s", d.Action, tc.want)
			}
			if d.Winner != tc.winner {
				t.Fatalf("winner %d, want %d", d.Winner, tc.winner)
			}
			if len(d.Matches) != len(tc.actions) {
				t.Fatalf("%d matches, want all %d listed", len(d.Matches), len(tc.actions))
			}
			if tc.want == "block" && d.Message != fmt.Sprintf("m%d", tc.winner) {
				t.Fatalf("message %q", d.Message)
			}
		})
	}
}

func TestAccessIntercept(t *testing.T) {
	e := mustEngine(t, `
access_policies:
  - {id: native-block, filters: {apps: [box], client_apps: [mobile_desktop]}, action: block}
  - {id: mon, action: monitor}
`)
	for _, tc := range []struct {
		host      string
		client    ClientApp
		intercept bool
		action    Action
	}{
		{"slack.com", ClientBrowser, true, ActionMonitor},
		{"slack.com", ClientMobileDesktop, false, ActionAllow},
		{"app.box.com", ClientMobileDesktop, true, ActionBlock},
		{"unknown.example", ClientBrowser, false, ActionAllow},
	} {
		d := e.Access(&AccessRequest{Host: tc.host, Subject: Subject{ClientApp: tc.client}})
		if d.Intercept != tc.intercept || d.Action != tc.action {
			t.Errorf("%s/%s: intercept %v action %s, want %v %s", tc.host, tc.client, d.Intercept, d.Action, tc.intercept, tc.action)
		}
	}
}

func TestDefaultBlockMessage(t *testing.T) {
	e := mustEngine(t, "access_policies: [{id: b, action: block}]")
	if d := e.Access(&AccessRequest{Host: "github.com"}); d.Message != DefaultBlockMessage {
		t.Fatalf("message %q", d.Message)
	}
	e = mustEngine(t, "settings: {block_message: nope}\naccess_policies: [{id: b, action: block}]")
	if d := e.Access(&AccessRequest{Host: "github.com"}); d.Message != "nope" {
		t.Fatalf("message %q", d.Message)
	}
}

func TestHostResolution(t *testing.T) {
	e := mustEngine(t, `
apps:
  - {id: portal, domains: ["*.office.example"]}
  - {id: mail, domains: [mail.office.example]}
  - {id: deep, domains: ["*.eu.office.example"]}
custom_domains:
  - {app: slack, domains: [chat.corp.example]}
`)
	for host, want := range map[string]string{
		"mail.office.example":           "mail",
		"www.office.example":            "portal",
		"a.eu.office.example":           "deep",
		"office.example":                "",
		"chat.corp.example":             "slack",
		"chat.corp.example:443":         "slack",
		"chat.corp.example.":            "slack",
		"files.slack.com":               "slack",
		"outlook.office.com":            "outlook",
		"www.office.com":                "office",
		"x.sharepoint.com":              "sharepoint",
		"wiki.lab":                      "dokuwiki",
		"evil-slack.com":                "",
		"slack.com.evil.example":        "",
		"":                              "",
		"[2001:db8::1]:443":             "",
		"drive.google.com":              "google_drive",
		"objects.githubusercontent.com": "github",
	} {
		got := ""
		if a := e.App(host); a != nil {
			got = a.ID
		}
		if got != want {
			t.Errorf("App(%q) = %q, want %q", host, got, want)
		}
	}
}
