package activity

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Facility is a syslog facility (RFC 5424 §6.2.1).
type Facility int

// Facilities an appliance may log under. The kernel facility (0) is left out
// on purpose: it is reserved for the kernel, and keeping the zero value free
// lets an unset Facility mean "local0".
const (
	FacilityUser     Facility = 1
	FacilityAuth     Facility = 4
	FacilityAuthPriv Facility = 10
	FacilityLocal0   Facility = 16
	FacilityLocal1   Facility = 17
	FacilityLocal2   Facility = 18
	FacilityLocal3   Facility = 19
	FacilityLocal4   Facility = 20
	FacilityLocal5   Facility = 21
	FacilityLocal6   Facility = 22
	FacilityLocal7   Facility = 23
)

// Syslog severities used for activity events (RFC 5424 §6.2.1).
const (
	severityWarning = 4
	severityInfo    = 6
)

// SyslogSDID names the structured-data element that carries an event. 32473
// is the private enterprise number RFC 5612 reserves for documentation:
// Portcullis has no registered number, and an SD-ID must contain "@" + PEN
// unless IANA registered it.
const SyslogSDID = "portcullis@32473"

// syslogMsgID is the MSGID of every activity message, so a receiver can
// route them without parsing the structured data.
const syslogMsgID = "activity"

// Header field limits from RFC 5424 §6 (ABNF).
const (
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
	maxMsgID    = 32
)

// utf8BOM starts an MSG encoded in UTF-8 (RFC 5424 §6.4).
const utf8BOM = "\ufeff"

// RFC5424 formats events as RFC 5424 messages. The zero value is usable:
// facility local0, and NILVALUE for the host, app and process id.
type RFC5424 struct {
	Facility Facility // zero means FacilityLocal0
	Host     string
	App      string
	ProcID   string
}

// FormatRFC5424 formats ev as an RFC 5424 message under facility local0,
// with every field in structured data (SD-ID SyslogSDID) and a short
// human-readable summary as MSG.
func FormatRFC5424(ev *Event, host, app string) []byte {
	return RFC5424{Host: host, App: app}.Format(ev)
}

// Format formats ev with its fields in structured data.
func (f RFC5424) Format(ev *Event) []byte {
	b := f.appendHeader(nil, ev)
	b = appendEventSD(b, ev)
	b = append(b, ' ')
	b = append(b, utf8BOM...)
	return append(b, toUTF8(eventSummary(ev))...)
}

// FormatCEF formats ev as a CEF payload carried as the MSG of an RFC 5424
// message, without structured data (the CEF extension already carries every
// field) and without a BOM (CEF receivers look for "CEF:" at the start).
func (f RFC5424) FormatCEF(ev *Event) []byte {
	b := f.appendHeader(nil, ev)
	b = append(b, "- "...)
	return append(b, FormatCEF(ev)...)
}

// appendHeader appends "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SP"
// for an activity event.
func (f RFC5424) appendHeader(b []byte, ev *Event) []byte {
	sev := severityInfo
	if ev.Action == "block" {
		sev = severityWarning
	}
	return f.appendHeaderWith(b, sev, ev.Time, syslogMsgID)
}

func (f RFC5424) appendHeaderWith(b []byte, sev int, t time.Time, msgID string) []byte {
	fac := f.Facility
	if fac <= 0 || fac > 23 {
		fac = FacilityLocal0
	}
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(fac)*8+int64(sev), 10)
	b = append(b, ">1 "...)
	b = appendTimestamp(b, t)
	b = append(b, ' ')
	b = appendHeaderField(b, f.Host, maxHostname)
	b = append(b, ' ')
	b = appendHeaderField(b, f.App, maxAppName)
	b = append(b, ' ')
	b = appendHeaderField(b, f.ProcID, maxProcID)
	b = append(b, ' ')
	b = appendHeaderField(b, msgID, maxMsgID)
	return append(b, ' ')
}

// appendTimestamp writes t in UTC with microseconds, the finest precision
// RFC 5424 allows; a zero time or one with a year RFC 3339 cannot express
// becomes NILVALUE.
func appendTimestamp(b []byte, t time.Time) []byte {
	if t.IsZero() || t.UTC().Year() < 0 || t.UTC().Year() > 9999 {
		return append(b, '-')
	}
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
}

// appendHeaderField writes s restricted to PRINTUSASCII and max bytes, so a
// hostile or misconfigured name can never shift the header's fields; other
// bytes become '_'. Empty becomes NILVALUE.
func appendHeaderField(b []byte, s string, max int) []byte {
	if s == "" {
		return append(b, '-')
	}
	for i := 0; i < len(s) && i < max; i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}

// appendEventSD writes the event's structured-data element. Empty strings
// and lists are left out (RFC 5424 has no NILVALUE for a PARAM-VALUE); the
// byte counters are always present because 0 is meaningful.
func appendEventSD(b []byte, ev *Event) []byte {
	b = append(b, '[')
	b = append(b, SyslogSDID...)
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
	param("id", ev.ID.String())
	if ev.Seq != 0 {
		param("seq", strconv.FormatInt(ev.Seq, 10))
	}
	param("mode", string(ev.Mode))
	param("user", ev.User)
	param("groups", joinList(ev.Groups))
	if ev.SourceIP.IsValid() {
		param("src", ev.SourceIP.String())
	}
	param("deviceTags", joinList(ev.DeviceTags))
	param("clientApp", ev.ClientApp)
	param("app", ev.App)
	param("host", ev.Host)
	param("method", ev.Method)
	param("path", ev.Path)
	param("activity", ev.Activity)
	param("action", ev.Action)
	param("reason", ev.Reason)
	param("policies", joinList(ev.Policies))
	param("bytesUp", strconv.FormatInt(ev.BytesUp, 10))
	param("bytesDown", strconv.FormatInt(ev.BytesDown, 10))
	param("session", ev.SessionID)
	param("file", ev.FileName)
	if ev.FileSize != 0 {
		param("fileSize", strconv.FormatInt(ev.FileSize, 10))
	}
	param("sha256", ev.FileSHA256)
	param("fileType", ev.FileType)
	param("label", ev.FileLabel)
	param("detectors", detectionList(ev.Detectors))
	param("ja4", ev.JA4)
	param("clientWhy", ev.ClientWhy)
	return append(b, ']')
}

// appendSDValue escapes a PARAM-VALUE (RFC 5424 §6.3.3): '"', '\' and ']'
// get a backslash. Invalid UTF-8 is replaced because the value must be
// UTF-8.
func appendSDValue(b []byte, v string) []byte {
	v = toUTF8(v)
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"', '\\', ']':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return b
}

// eventSummary is the MSG a person reads in a plain log viewer; the
// structured data is authoritative.
func eventSummary(ev *Event) string {
	or := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	return or(ev.User) + " " + or(ev.Action) + " " + or(ev.Method) + " " + ev.Host + ev.Path
}

// toUTF8 replaces invalid UTF-8 with U+FFFD.
func toUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// joinList joins items with ',' escaping ',' and '\' inside items, so an id
// that happens to contain a comma survives. Empty items carry nothing and
// are dropped.
func joinList(items []string) string {
	var sb strings.Builder
	for _, it := range items {
		if it == "" {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		for i := 0; i < len(it); i++ {
			if it[i] == ',' || it[i] == '\\' {
				sb.WriteByte('\\')
			}
			sb.WriteByte(it[i])
		}
	}
	return sb.String()
}

// SplitList reverses the list encoding of the "policies", "groups" and
// "deviceTags" values (and the CEF custom strings that carry them).
func SplitList(s string) []string {
	if s == "" {
		return nil
	}
	var items []string
	var cur []byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			cur = append(cur, s[i])
		case c == ',':
			items = append(items, string(cur))
			cur = cur[:0]
		default:
			cur = append(cur, c)
		}
	}
	return append(items, string(cur))
}
