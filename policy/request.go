package policy

import "net/netip"

// ClientApp is the kind of client, derived by the proxy from the TLS
// fingerprint (JA4) and the User-Agent.
type ClientApp uint8

const (
	ClientBrowser       ClientApp = iota // a web browser
	ClientMobileDesktop                  // a native mobile or desktop app
)

func (c ClientApp) String() string {
	if c == ClientMobileDesktop {
		return "mobile_desktop"
	}
	return "browser"
}

// Built-in tag names. Device tags beyond these must be declared in
// device_tags; user-agent tags are a fixed set the proxy knows how to derive.
const (
	DeviceValidClientCertificate = "valid_client_certificate"
	DeviceCompliant              = "compliant"

	UAOutdatedBrowser = "outdated_browser"
	UAOutdatedOS      = "outdated_os"
	UANativeClient    = "native_client"
)

// Subject is who is asking and from where: everything access and session
// policies filter on besides the app.
type Subject struct {
	User       string     // user name or e-mail, as the IdP asserts it
	Groups     []string   // group names
	DeviceTags []string   // valid_client_certificate, compliant, admin tags
	ClientApp  ClientApp  // browser or mobile_desktop
	UATags     []string   // outdated_browser, outdated_os, native_client
	SourceIP   netip.Addr // client address as seen by the appliance
}

// AccessRequest is evaluated once per connection (or per SSO session in
// suffix mode), before the proxy decides to intercept.
type AccessRequest struct {
	Subject
	Host string // SNI or Host, lowercased, no trailing dot; a ":port" is ignored
}

// ActivityKind is what the proxy (or the control script in the page) saw
// the user do. Catalog activities (send_message...) come on top of it.
type ActivityKind uint8

const (
	KindRequest  ActivityKind = iota // an ordinary request
	KindDownload                     // a file download (attachment response)
	KindUpload                       // a file upload (multipart or raw body)
	KindPrint                        // print, reported by the control script
	KindCutCopy                      // cut or copy, reported by the control script
	KindPaste                        // paste, reported by the control script
)

// builtinActivities are the names policies use for the kinds; their index
// is the kind, and also the activity number the engine uses internally.
var builtinActivities = [...]string{"", "download", "upload", "print", "cut_copy", "paste"}

func (k ActivityKind) String() string {
	if k == KindRequest {
		return "request"
	}
	if int(k) < len(builtinActivities) {
		return builtinActivities[k]
	}
	return "unknown"
}

// FileInfo describes a file being downloaded or uploaded.
type FileInfo struct {
	Name  string // file name as the user sees it
	Ext   string // lowercase, without the dot; derived from Name when empty
	MIME  string // detected from content (policy/filetype), not the declared type
	Size  int64  // bytes; negative when unknown
	Label string // sensitivity label name; empty when the file carries none
	// LabelKnown: the whole file was read and Label is what it carries.
	// Policies that filter on labels wait for it (NeedInspection).
	LabelKnown bool
}

// MalwareStatus is the state of malware scanning for a file.
type MalwareStatus uint8

const (
	MalwareNotScanned  MalwareStatus = iota // not scanned (yet)
	MalwareClean                            // a scanner found nothing
	MalwareInfected                         // a scanner reported malware
	MalwareScanFailed                       // the scanner failed or was unreachable
	MalwareScanTimeout                      // the scanner took too long
	MalwareTooLarge                         // the file is larger than the scanner takes
)

var malwareNames = [...]string{"not scanned", "clean", "infected", "scan failed", "scan timed out", "too large to scan"}

func (m MalwareStatus) String() string {
	if int(m) < len(malwareNames) {
		return malwareNames[m]
	}
	return "unknown"
}

// InspectionStatus is the state of content inspection for a request.
type InspectionStatus uint8

const (
	InspectionNotDone  InspectionStatus = iota // not inspected (yet)
	InspectionDone                             // Content holds the result
	InspectionFailed                           // the content could not be parsed or scanned
	InspectionTimeout                          // scanning took too long
	InspectionTooLarge                         // over the inspection size limit
)

var inspectionNames = [...]string{"not inspected", "inspected", "inspection failed", "inspection timed out", "file over the inspection size limit"}

func (s InspectionStatus) String() string {
	if int(s) < len(inspectionNames) {
		return inspectionNames[s]
	}
	return "unknown"
}

// FieldGetter gives the activity matcher access to body fields (JSON keys
// or form fields) without the engine parsing bodies itself.
type FieldGetter interface {
	Field(name string) (value string, ok bool)
}

// SessionRequest is evaluated per request or reported activity inside an
// intercepted session.
type SessionRequest struct {
	Subject
	Method string
	Host   string // as in AccessRequest
	Path   string // URL path without the query
	Kind   ActivityKind
	// Activity is a catalog activity id the caller already resolved; when
	// empty the engine resolves it from Method, Host, Path (and Body).
	Activity   string
	Body       FieldGetter // optional, for activities that match on body fields
	File       *FileInfo   // downloads and uploads
	Inspection InspectionStatus
	Content    *ContentResult // set when Inspection is InspectionDone
	Malware    MalwareStatus  // for policies with malware: true
}
