package activity

import (
	"strconv"
	"strings"
)

// CEF header constants. The device version is the version of this mapping,
// not of the appliance, so a SIEM parser can tell field layouts apart.
const (
	cefVendor        = "Portcullis"
	cefProduct       = "Portcullis"
	cefDeviceVersion = "1"
)

// Custom field labels: CEF has no standard key for these, so they go in the
// csN/flexStringN/c6aN slots with a label naming them, as the spec intends.
const (
	cefLabelPolicies   = "policies"
	cefLabelApp        = "app"
	cefLabelActivity   = "activity"
	cefLabelSession    = "session"
	cefLabelJA4        = "ja4"
	cefLabelGroups     = "groups"
	cefLabelMode       = "mode"
	cefLabelDeviceTags = "deviceTags"
	cefLabelSeq        = "seq"
	cefLabelSrcIPv6    = "Source IPv6 Address"
)

// FormatCEF formats ev as a CEF:0 payload. The signature id is the action,
// the severity 7 for block and 3 otherwise (matching syslog warning/info),
// and the extension uses standard CEF keys where one exists: rt (ms since
// the epoch), externalId (event id, for de-duplication), src (or c6a2 for
// IPv6), suser, requestClientApplication, dhost, requestMethod, request,
// act, reason, fname, fsize, fileHash, in (bytes up), out (bytes down).
func FormatCEF(ev *Event) []byte {
	action := ev.Action
	if action == "" {
		action = "unknown"
	}
	name := "access " + action
	if ev.Activity != "" {
		name = ev.Activity + " " + action
	}
	sev := "3"
	if ev.Action == "block" {
		sev = "7"
	}
	w := newCEFRecord(action, name, sev)
	ext, labeled := w.ext, w.labeled
	if !ev.Time.IsZero() {
		ext("rt", strconv.FormatInt(ev.Time.UnixMilli(), 10))
	}
	ext("externalId", ev.ID.String())
	if ev.Seq != 0 {
		labeled("cn1", cefLabelSeq, strconv.FormatInt(ev.Seq, 10))
	}
	if ip := ev.SourceIP; ip.Is4() || ip.Is4In6() {
		ext("src", ip.Unmap().String())
	} else if ip.IsValid() {
		labeled("c6a2", cefLabelSrcIPv6, ip.String())
	}
	ext("suser", ev.User)
	ext("requestClientApplication", ev.ClientApp)
	ext("dhost", ev.Host)
	ext("requestMethod", ev.Method)
	ext("request", ev.Path)
	ext("act", ev.Action)
	ext("reason", ev.Reason)
	labeled("cs1", cefLabelPolicies, joinList(ev.Policies))
	labeled("cs2", cefLabelApp, ev.App)
	labeled("cs3", cefLabelActivity, ev.Activity)
	labeled("cs4", cefLabelSession, ev.SessionID)
	labeled("cs5", cefLabelJA4, ev.JA4)
	labeled("cs6", cefLabelGroups, joinList(ev.Groups))
	labeled("flexString1", cefLabelMode, string(ev.Mode))
	labeled("flexString2", cefLabelDeviceTags, joinList(ev.DeviceTags))
	ext("fname", ev.FileName)
	if ev.FileSize != 0 {
		ext("fsize", strconv.FormatInt(ev.FileSize, 10))
	}
	ext("fileHash", ev.FileSHA256)
	ext("fileType", ev.FileType)
	// The custom string slots are taken: the label and the detectors go in
	// msg, the free-text field, as "label=...; detectors=...".
	ext("msg", inspectionSummary(ev.FileLabel, ev.Detectors))
	ext("in", strconv.FormatInt(ev.BytesUp, 10))
	ext("out", strconv.FormatInt(ev.BytesDown, 10))
	return w.b
}

// cefRecord builds one CEF line: the header, then extension fields that
// are left out when empty.
type cefRecord struct {
	b     []byte
	first bool
}

func newCEFRecord(signatureID, name, severity string) *cefRecord {
	w := &cefRecord{b: []byte("CEF:0"), first: true}
	for _, h := range []string{cefVendor, cefProduct, cefDeviceVersion, signatureID, name, severity} {
		w.b = append(w.b, '|')
		w.b = appendCEFHeader(w.b, h)
	}
	w.b = append(w.b, '|')
	return w
}

// ext adds key=v (escaped) unless v is empty.
func (w *cefRecord) ext(key, v string) {
	if v == "" {
		return
	}
	if !w.first {
		w.b = append(w.b, ' ')
	}
	w.first = false
	w.b = append(w.b, key...)
	w.b = append(w.b, '=')
	w.b = appendCEFValue(w.b, v)
}

// labeled adds a custom field and its label, unless v is empty.
func (w *cefRecord) labeled(key, label, v string) {
	if v != "" {
		w.ext(key, v)
		w.ext(key+"Label", label)
	}
}

// appendCEFHeader escapes a header field: '\' and '|' get a backslash. A
// header cannot hold a line break, so CR and LF become spaces.
func appendCEFHeader(b []byte, s string) []byte {
	s = toUTF8(s)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '|':
			b = append(b, '\\', c)
		case '\r', '\n':
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendCEFValue escapes an extension value: '\' and '=' get a backslash,
// CR and LF are written as \r and \n so a value never breaks a line.
func appendCEFValue(b []byte, s string) []byte {
	s = toUTF8(s)
	if !strings.ContainsAny(s, "\\=\r\n") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '=':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, c)
		}
	}
	return b
}
