package console

import (
	"bytes"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/portcullis-gw/portcullis/policy"
)

// SampleRequest is a hand-written request for explain: what the policies
// in the editor (with the rest of the directory) decide for it, and why.
// An access request names a host; anything with a method, a kind, a file
// or an activity is a session request.
type SampleRequest struct {
	Type       string   `json:"type,omitempty"` // access or session; empty: guessed as above
	User       string   `json:"user,omitempty"`
	Groups     []string `json:"groups,omitempty"`
	DeviceTags []string `json:"device_tags,omitempty"`
	ClientApp  string   `json:"client_app,omitempty"` // browser (default) or mobile_desktop
	SourceIP   string   `json:"source_ip,omitempty"`
	Host       string   `json:"host"`
	Method     string   `json:"method,omitempty"`
	Path       string   `json:"path,omitempty"`
	Activity   string   `json:"activity,omitempty"`
	Kind       string   `json:"kind,omitempty"` // request, download, upload, print, cut_copy, paste
	File       *struct {
		Name  string `json:"name"`
		MIME  string `json:"mime"`
		Label string `json:"label"`
		Size  *int64 `json:"size"`
	} `json:"file,omitempty"`
	// Content is text to inspect as the body (detectors).
	Content *string `json:"content,omitempty"`
}

type explainInput struct {
	File    string        `json:"file"`
	Content string        `json:"content"`
	Request SampleRequest `json:"request"`
}

// ExplainResult is explain's answer.
type ExplainResult struct {
	Type    string `json:"type"`
	Action  string `json:"action"`
	Explain string `json:"explain"`
}

var sampleKinds = map[string]policy.ActivityKind{"": policy.KindRequest, "request": policy.KindRequest,
	"download": policy.KindDownload, "upload": policy.KindUpload, "print": policy.KindPrint,
	"cut_copy": policy.KindCutCopy, "paste": policy.KindPaste}

// explainSample decides sr with e and writes the engine's explanation.
func explainSample(e *policy.Engine, sr *SampleRequest) (*ExplainResult, error) {
	subj := policy.Subject{User: sr.User, Groups: sr.Groups, DeviceTags: sr.DeviceTags}
	switch sr.ClientApp {
	case "", "browser":
		subj.ClientApp = policy.ClientBrowser
	case "mobile_desktop":
		subj.ClientApp = policy.ClientMobileDesktop
	default:
		return nil, fmt.Errorf("client_app %q: use browser or mobile_desktop", sr.ClientApp)
	}
	if sr.SourceIP != "" {
		a, err := netip.ParseAddr(sr.SourceIP)
		if err != nil {
			return nil, fmt.Errorf("source_ip %q: not an IP address", sr.SourceIP)
		}
		subj.SourceIP = a
	}
	host := strings.ToLower(strings.TrimSpace(sr.Host))
	if host == "" {
		return nil, fmt.Errorf("host: required")
	}
	kind, ok := sampleKinds[sr.Kind]
	if !ok {
		return nil, fmt.Errorf("kind %q: use request, download, upload, print, cut_copy or paste", sr.Kind)
	}
	typ := sr.Type
	if typ == "" {
		typ = "session"
		if sr.Method == "" && sr.Kind == "" && sr.File == nil && sr.Activity == "" && sr.Content == nil {
			typ = "access"
		}
	}
	var b bytes.Buffer
	switch typ {
	case "access":
		req := &policy.AccessRequest{Host: host, Subject: subj}
		d := e.Access(req)
		e.ExplainAccess(&b, req, &d)
		return &ExplainResult{Type: typ, Action: d.Action.String(), Explain: b.String()}, nil
	case "session":
	default:
		return nil, fmt.Errorf("type %q: access or session", sr.Type)
	}
	method := strings.ToUpper(sr.Method)
	if method == "" {
		method = http.MethodGet
	}
	path := sr.Path
	if path == "" {
		path = "/"
	}
	req := &policy.SessionRequest{Subject: subj, Method: method, Host: host, Path: path, Activity: sr.Activity, Kind: kind}
	if sr.File != nil {
		fi := &policy.FileInfo{Name: sr.File.Name, MIME: sr.File.MIME, Label: sr.File.Label, Size: -1}
		if sr.File.Size != nil {
			fi.Size = *sr.File.Size
		}
		req.File = fi
	}
	if sr.Content != nil {
		if len(*sr.Content) > 1<<20 {
			return nil, fmt.Errorf("content: at most 1 MiB")
		}
		in := e.NewInspector()
		in.Write([]byte(*sr.Content))
		req.Inspection, req.Content = policy.InspectionDone, in.Result()
	}
	d := e.Session(req)
	e.ExplainSession(&b, req, &d)
	return &ExplainResult{Type: typ, Action: d.Action.String(), Explain: b.String()}, nil
}

// apiPolicyExplain is POST /api/v1/policies/explain: the directory with
// the editor's file (validated as a save would be) decides the sample.
func (c *Console) apiPolicyExplain(w http.ResponseWriter, r *http.Request, _ *session) {
	var in explainInput
	if err := decodeJSON(r, &in); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	files, _, err := c.policyFiles()
	if err != nil {
		apiError(w, statusOf(err), err.Error())
		return
	}
	if in.File != "" {
		if !fileNamePattern.MatchString(in.File) {
			apiError(w, http.StatusBadRequest, ErrBadFileName.Error())
			return
		}
		if len(in.Content) > policy.MaxFileSize {
			apiError(w, http.StatusRequestEntityTooLarge, "policy file too large")
			return
		}
		files = withFile(files, in.File, []byte(in.Content))
	}
	set, problems := c.validate(files)
	if blocking(problems) {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": ErrInvalidPolicy.Error(), "problems": problems})
		return
	}
	e, err := policy.CompileFor(set, c.opt.Capabilities())
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": ErrInvalidPolicy.Error(), "problems": problemsOf(err)})
		return
	}
	res, err := explainSample(e, &in.Request)
	if err != nil {
		apiError(w, http.StatusBadRequest, "request: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}
