package activity

import (
	"bufio"
	"context"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func testAlert(policy, user string, at time.Time) Alert {
	return Alert{Time: at, PolicyID: policy, Severity: SeverityHigh, User: user, App: "box",
		Host: "app.box.com", Activity: "download", Message: "download of a labeled file", EventID: uuid.New()}
}

// The daily limit holds per policy and UTC day, survives a reopen, and the
// suppressed count comes back as one summary row once the day is over.
func TestRaiseAlertDailyLimitPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Today (UTC): Open prunes the counts of days long over.
	day := time.Now().UTC().Truncate(24 * time.Hour)
	raise := func(s *Store, policy string, at time.Time, want bool) {
		t.Helper()
		got, err := s.RaiseAlert(testAlert(policy, "alice", at), 3)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%s at %s: raised %v, want %v", policy, at, got, want)
		}
	}
	raise(s, "p1", day, true)
	raise(s, "p1", day.Add(time.Minute), true)
	raise(s, "p2", day, true) // another policy has its own count
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raise(s, "p1", day.Add(2*time.Minute), true)
	for i := range 5 {
		raise(s, "p1", day.Add(time.Duration(3+i)*time.Minute), false)
	}
	raise(s, "p1", day.Add(24*time.Hour), true) // a new UTC day
	if _, err := s.RaiseAlert(Alert{}, 3); err == nil {
		t.Fatal("an alert without a policy was accepted")
	}

	// Not summarized while the day is still running.
	if n, err := s.SummarizeAlerts(day.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("summaries during the day: %d, %v", n, err)
	}
	if n, err := s.SummarizeAlerts(day.Add(24 * time.Hour)); err != nil || n != 1 {
		t.Fatalf("summaries after the day: %d, %v", n, err)
	}
	if n, err := s.SummarizeAlerts(day.Add(48 * time.Hour)); err != nil || n != 0 {
		t.Fatalf("second summary pass wrote %d, %v", n, err)
	}

	p, err := s.SearchAlerts(AlertQuery{PolicyID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	var raised, summaries int
	for _, a := range p.Alerts {
		if a.Suppressed > 0 {
			summaries++
			if a.Suppressed != 5 || a.Day != day.Format(time.DateOnly) || !strings.Contains(a.Message, "5 alerts") {
				t.Errorf("summary %+v", a)
			}
			continue
		}
		raised++
		if a.User != "alice" || a.EventID == (uuid.UUID{}) || a.ID.Version() != 7 || a.Severity != SeverityHigh {
			t.Errorf("alert read back as %+v", a)
		}
	}
	if raised != 4 || summaries != 1 {
		t.Fatalf("p1: %d raised and %d summaries, want 4 and 1", raised, summaries)
	}
	// Newest first, paginated.
	p, err = s.SearchAlerts(AlertQuery{PolicyID: "p1", Limit: 2})
	if err != nil || len(p.Alerts) != 2 || p.Next == "" || !p.Alerts[0].Time.After(p.Alerts[1].Time) {
		t.Fatalf("first page %+v, %v", p, err)
	}
	if all, _ := s.SearchAlerts(AlertQuery{}); len(all.Alerts) != 6 {
		t.Fatalf("%d alerts in all, want 6", len(all.Alerts))
	}
}

// A summary for a day that ended while the appliance was down is written at
// Open.
func TestAlertSummaryAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().UTC().Add(-72 * time.Hour)
	for range 3 {
		if _, err := s.RaiseAlert(testAlert("p9", "bob", past), 1); err != nil {
			t.Fatal(err)
		}
	}
	// Close before the ticker could summarize: Open must do it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.SearchAlerts(AlertQuery{PolicyID: "p9"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Alerts) != 2 || p.Alerts[0].Suppressed != 2 {
		t.Fatalf("alerts after reopen: %+v", p.Alerts)
	}
}

// alertReceiver collects syslog messages of any MSGID.
func alertReceiver(t *testing.T) (addr string, got chan *SyslogMessage) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got = make(chan *SyslogMessage, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					n, err := br.ReadString(' ')
					if err != nil {
						return
					}
					size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
					if err != nil || size <= 0 || size > 64<<10 {
						t.Errorf("bad frame length %q", n)
						return
					}
					msg := make([]byte, size)
					if _, err := io.ReadFull(br, msg); err != nil {
						return
					}
					m, err := ParseRFC5424(msg)
					if err != nil {
						t.Errorf("%q: %v", msg, err)
						return
					}
					got <- m
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), got
}

// Alerts reach the syslog receiver as their own messages (MSGID "alert"),
// in order, with the alert's severity, in both formats, beside the events.
func TestSyslogExportsAlerts(t *testing.T) {
	for _, format := range []string{"rfc5424", "cef"} {
		t.Run(format, func(t *testing.T) {
			st, _ := openTest(t, Options{})
			addr, got := alertReceiver(t)
			emitN(t, st, 0, 10)
			waitWritten(t, st, 10)
			now := time.Now()
			sevs := []string{SeverityLow, SeverityMedium, SeverityHigh}
			for i := range 6 {
				a := testAlert("p"+strconv.Itoa(i), "carol", now.Add(time.Duration(i)*time.Millisecond))
				a.Severity = sevs[i%3]
				if ok, err := st.RaiseAlert(a, 0); err != nil || !ok {
					t.Fatalf("raise %d: %v %v", i, ok, err)
				}
			}
			exp := &Syslog{Store: st, Network: "tcp", Addr: addr, Format: format, Hostname: "fw1",
				Batch: 4, Poll: 5 * time.Millisecond, Timeout: 2 * time.Second}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- exp.Run(ctx) }()
			defer func() { cancel(); <-done }()

			var events, alerts int
			timeout := time.After(10 * time.Second)
			for events < 10 || alerts < 6 {
				select {
				case m := <-got:
					switch m.MsgID {
					case "activity":
						events++
					case "alert":
						i := alerts
						alerts++
						want := sevs[i%3]
						if m.Severity != alertSyslogSeverity(want) {
							t.Errorf("alert %d: syslog severity %d, want %d", i, m.Severity, alertSyslogSeverity(want))
						}
						if format == "cef" {
							c, err := ParseCEF(m.Msg)
							if err != nil {
								t.Fatal(err)
							}
							if c.SignatureID != "alert:p"+strconv.Itoa(i) || c.Severity != strconv.Itoa(AlertCEFSeverity(want)) || c.Ext["suser"] != "carol" {
								t.Errorf("alert %d in order with its severity: %+v", i, c)
							}
							continue
						}
						sd := m.SD[SyslogAlertSDID]
						if sd["policy"] != "p"+strconv.Itoa(i) || sd["severity"] != want || sd["user"] != "carol" || m.Msg != "download of a labeled file" {
							t.Errorf("alert %d in order: %+v %q", i, sd, m.Msg)
						}
					default:
						t.Fatalf("MSGID %q", m.MsgID)
					}
				case <-timeout:
					t.Fatalf("received %d events and %d alerts", events, alerts)
				}
			}
			cur, err := st.AlertCursor("syslog")
			if err != nil || cur != 6 {
				t.Fatalf("alert cursor %d, %v; want 6", cur, err)
			}
		})
	}
}

// Age retention removes old alerts with old events.
func TestPruneDeletesOldAlerts(t *testing.T) {
	s, _ := openTest(t, Options{MaxAge: time.Hour})
	now := time.Now()
	for _, at := range []time.Time{now.Add(-3 * time.Hour), now.Add(-2 * time.Hour), now} {
		if _, err := s.RaiseAlert(testAlert("old", "dave", at), 0); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Prune(now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.SearchAlerts(AlertQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if res.AlertsDeleted != 2 || len(p.Alerts) != 1 || !p.Alerts[0].Time.Equal(now.UTC()) {
		t.Fatalf("pruned %d alerts, %d left", res.AlertsDeleted, len(p.Alerts))
	}
}
