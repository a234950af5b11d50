package activity

import (
	"strconv"
)

// SyslogAlertSDID names the structured-data element of an alert message.
const SyslogAlertSDID = "portcullisAlert@32473"

// syslogAlertMsgID is the MSGID of alert messages, so a receiver can route
// alerts apart from the activity stream without parsing them.
const syslogAlertMsgID = "alert"

// alertSyslogSeverity maps an alert's severity to RFC 5424's: high is
// critical, medium warning, low (and anything else) notice.
func alertSyslogSeverity(sev string) int {
	switch sev {
	case SeverityHigh:
		return 2
	case SeverityMedium:
		return 4
	}
	return 5
}

// AlertCEFSeverity maps an alert's severity to CEF's 0-10 scale (low 3,
// medium 6, high 8; an unknown severity is 5).
func AlertCEFSeverity(sev string) int {
	switch sev {
	case SeverityLow:
		return 3
	case SeverityMedium:
		return 6
	case SeverityHigh:
		return 8
	}
	return 5
}

// FormatAlert formats a as an RFC 5424 message with MSGID "alert", its
// fields in structured data (SD-ID SyslogAlertSDID) and its message as MSG.
func (f RFC5424) FormatAlert(a *Alert) []byte {
	b := f.appendAlertHeader(nil, a)
	b = append(b, '[')
	b = append(b, SyslogAlertSDID...)
	param := func(name, v string) {
		if v == "" {
			return
		}
		b = append(b, ' ')
		b = append(b, name...)
		b = append(b, `="`...)
		b = appendSDValue(b, v)
		b = append(b, '"')
	}
	param("id", a.ID.String())
	param("seq", strconv.FormatInt(a.Seq, 10))
	param("policy", a.PolicyID)
	param("severity", a.Severity)
	param("user", a.User)
	param("app", a.App)
	param("host", a.Host)
	param("activity", a.Activity)
	if a.EventID != [16]byte{} {
		param("event", a.EventID.String())
	}
	if a.Suppressed > 0 {
		param("suppressed", strconv.FormatInt(a.Suppressed, 10))
	}
	param("day", a.Day)
	b = append(b, "] "...)
	b = append(b, utf8BOM...)
	return append(b, toUTF8(a.Message)...)
}

// FormatAlertCEF formats a as a CEF payload carried as the MSG of an RFC
// 5424 message with MSGID "alert".
func (f RFC5424) FormatAlertCEF(a *Alert) []byte {
	b := f.appendAlertHeader(nil, a)
	b = append(b, "- "...)
	return append(b, FormatAlertCEF(a)...)
}

func (f RFC5424) appendAlertHeader(b []byte, a *Alert) []byte {
	return f.appendHeaderWith(b, alertSyslogSeverity(a.Severity), a.Time, syslogAlertMsgID)
}

// FormatAlertCEF formats a as a CEF:0 payload: signature id "alert:" and
// the policy id, name the message, severity from AlertCEFSeverity; the
// extension has rt, externalId (alert id), suser, dhost, cs1 policy, cs2
// app, cs3 activity, cs4 the event id, cn2 the suppressed count on a
// summary.
func FormatAlertCEF(a *Alert) []byte {
	name := a.Message
	if name == "" {
		name = "policy alert " + a.PolicyID
	}
	w := newCEFRecord("alert:"+a.PolicyID, name, strconv.Itoa(AlertCEFSeverity(a.Severity)))
	ext, labeled := w.ext, w.labeled
	if !a.Time.IsZero() {
		ext("rt", strconv.FormatInt(a.Time.UnixMilli(), 10))
	}
	ext("externalId", a.ID.String())
	labeled("cn1", cefLabelSeq, strconv.FormatInt(a.Seq, 10))
	ext("suser", a.User)
	ext("dhost", a.Host)
	labeled("cs1", "policy", a.PolicyID)
	labeled("cs2", cefLabelApp, a.App)
	labeled("cs3", cefLabelActivity, a.Activity)
	if a.EventID != [16]byte{} {
		labeled("cs4", "eventId", a.EventID.String())
	}
	if a.Suppressed > 0 {
		labeled("cn2", "suppressed", strconv.FormatInt(a.Suppressed, 10))
	}
	return w.b
}
