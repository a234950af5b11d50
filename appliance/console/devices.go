package console

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The devices and certificates page: the appliance CA to download (the
// certificate only: the key never leaves the appliance), the client CAs
// and CRLs devices are checked against (devices.client_cas and crl_files
// from the configuration, shown read-only, plus those uploaded here, which
// go through the pending-changes tray into DevicesOptions.Dir), and the
// pass-through list of destinations learnt from certificate-pinned clients.

// DevicesOptions are the appliance's device-certificate hooks.
type DevicesOptions struct {
	// Dir holds the uploaded files: Dir/ca/*.pem and Dir/crl/*.crl, which
	// the appliance loads after devices.client_cas and crl_files.
	Dir string
	// Configured are the files of the configuration (read-only here).
	Configured func() (cas, crls []string)
	// CheckSet loads a CA set as the appliance would (every bundle, every
	// CRL), without using it; its error is shown and refuses the change.
	CheckSet func(cas, crls [][]byte) error
	// Live: the running appliance takes a new set on reload. False when it
	// started without client CAs (its listeners do not ask for
	// certificates): the set then takes effect at the next restart.
	Live func() bool
	// ApplianceCA is the appliance CA's certificate (PEM) in force.
	ApplianceCA func() []byte
	// PassThrough lists the learnt pass-through entries; Remove removes one
	// (family "" every family) and reports whether one was.
	PassThrough       func() []PassThroughEntry
	RemovePassThrough func(host, family string) bool
	// StaticBypass are the hosts always passed through (access.bypass_hosts).
	StaticBypass []string
}

// PassThroughEntry is one learnt destination of the pass-through list.
type PassThroughEntry struct {
	Host    string    `json:"host"`
	Family  string    `json:"family"`
	Expires time.Time `json:"expires"`
}

// maxDeviceUpload bounds an uploaded CA bundle or CRL.
const maxDeviceUpload = 256 << 10

// CAInfo is one certificate of a client-CA bundle.
type CAInfo struct {
	File        string    `json:"file"`   // tray name (uploaded) or path (configured)
	Source      string    `json:"source"` // "configured" or "uploaded"
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	Root        bool      `json:"root"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	Expired     bool      `json:"expired"`
	SHA256      string    `json:"sha256"`
	Error       string    `json:"error,omitempty"`
	Removable   bool      `json:"removable"`
	ExpiresSoon bool      `json:"expires_soon"`
}

// CRLInfo is one CRL.
type CRLInfo struct {
	File       string    `json:"file"`
	Source     string    `json:"source"`
	Issuer     string    `json:"issuer"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update,omitzero"`
	Stale      bool      `json:"stale"` // past its next update
	Revoked    int       `json:"revoked"`
	Error      string    `json:"error,omitempty"`
	Removable  bool      `json:"removable"`
}

// DevicesView is GET /api/v1/devices.
type DevicesView struct {
	ApplianceCA *CAInfo            `json:"appliance_ca,omitempty"`
	CAs         []CAInfo           `json:"cas"`
	CRLs        []CRLInfo          `json:"crls"`
	Live        bool               `json:"live"`
	Problems    []string           `json:"problems,omitempty"`
	Pending     []string           `json:"pending,omitempty"` // staged device changes, in words
	PassThrough []PassThroughEntry `json:"pass_through"`
	// StaticBypass are access.bypass_hosts (the configuration file).
	StaticBypass []string `json:"static_bypass"`
	// PassThroughOn: the appliance reports its learnt list.
	PassThroughOn bool `json:"pass_through_on"`
}

var errNoDevices = errors.New("this appliance does not manage device certificates from the console")

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// parseCerts reads the CERTIFICATE blocks of a PEM bundle (or one DER
// certificate), refusing what is not one.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, errors.New("not a certificate: neither PEM (-----BEGIN CERTIFICATE-----) nor DER")
		}
		return []*x509.Certificate{c}, nil
	}
	var out []*x509.Certificate
	rest := b
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) > 0 && len(out) == 0 {
				return nil, errors.New("not a certificate: the PEM is malformed")
			}
			break
		}
		switch {
		case strings.Contains(blk.Type, "PRIVATE KEY"):
			return nil, fmt.Errorf("PEM block %d is a private key: upload the CA certificate only, never its key", n)
		case blk.Type != "CERTIFICATE":
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: not a valid certificate: %v", n, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate in the upload")
	}
	return out, nil
}

func parseCRL(b []byte) (*x509.RevocationList, error) {
	der := b
	if bytes.Contains(b, []byte("-----BEGIN")) {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, errors.New("not a CRL: the PEM is malformed")
		}
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("the PEM block is %q, want X509 CRL", blk.Type)
		}
		der = blk.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("not a CRL (PEM \"X509 CRL\" or DER): %v", err)
	}
	return crl, nil
}

var slugRun = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	s = strings.Trim(slugRun.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 40 {
		s = strings.Trim(s[:40], "-")
	}
	if s == "" {
		s = "unnamed"
	}
	return s
}

// deviceUpload checks an uploaded CA bundle or CRL and gives its tray name
// and the PEM text to store. Refused: too large, not PEM/DER, a private
// key, a certificate that is not a CA, a CA expired or not yet valid, a
// CRL that does not parse.
func deviceUpload(kind string, b []byte, now time.Time) (string, string, error) {
	if len(b) > maxDeviceUpload {
		return "", "", fmt.Errorf("the upload is %d bytes, at most %d KiB", len(b), maxDeviceUpload>>10)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "", "", errors.New("the upload is empty")
	}
	if kind == ChangeDeviceCRL {
		crl, err := parseCRL(b)
		if err != nil {
			return "", "", err
		}
		issuer := crl.Issuer.CommonName
		if issuer == "" {
			issuer = crl.Issuer.String()
		}
		name := extDeviceCRL + slug(issuer) + "-" + strings.ToLower(strings.ReplaceAll(fingerprint(crl.Raw), ":", ""))[:12] + ".crl"
		return name, string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl.Raw})), nil
	}
	certs, err := parseCerts(b)
	if err != nil {
		return "", "", err
	}
	var out bytes.Buffer
	for _, c := range certs {
		switch {
		case !c.BasicConstraintsValid || !c.IsCA:
			return "", "", fmt.Errorf("%q is not a CA certificate (no basic constraints CA:TRUE): upload the CA that issues the device certificates, not a device certificate", certName(c))
		case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0:
			return "", "", fmt.Errorf("%q may not sign certificates (key usage without keyCertSign)", certName(c))
		case now.After(c.NotAfter):
			return "", "", fmt.Errorf("%q expired on %s", certName(c), c.NotAfter.UTC().Format("2006-01-02 15:04 MST"))
		case now.Before(c.NotBefore):
			return "", "", fmt.Errorf("%q is not valid before %s", certName(c), c.NotBefore.UTC().Format("2006-01-02 15:04 MST"))
		}
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	name := extDeviceCA + slug(certName(certs[0])) + "-" + strings.ToLower(strings.ReplaceAll(fingerprint(certs[0].Raw), ":", ""))[:12] + ".pem"
	return name, out.String(), nil
}

// describeUpload is an uploaded file in words, for summaries.
func describeUpload(file string, b []byte) string {
	if strings.HasPrefix(file, extDeviceCRL) {
		crl, err := parseCRL(b)
		if err != nil {
			return "CRL " + file
		}
		return fmt.Sprintf("CRL of %q (next update %s, %d revoked)", crl.Issuer.CommonName, crl.NextUpdate.UTC().Format("2006-01-02 15:04 MST"), len(crl.RevokedCertificateEntries))
	}
	certs, err := parseCerts(b)
	if err != nil || len(certs) == 0 {
		return "device CA " + file
	}
	c := certs[0]
	s := fmt.Sprintf("device CA %q (valid to %s, SHA-256 %s)", certName(c), c.NotAfter.UTC().Format("2006-01-02"), fingerprint(c.Raw)[:23]+"…")
	if len(certs) > 1 {
		s += fmt.Sprintf(" and %d more", len(certs)-1)
	}
	return s
}

func caInfos(file, source string, b []byte, now time.Time) []CAInfo {
	certs, err := parseCerts(b)
	if err != nil {
		return []CAInfo{{File: file, Source: source, Error: err.Error()}}
	}
	out := make([]CAInfo, 0, len(certs))
	for _, c := range certs {
		out = append(out, CAInfo{File: file, Source: source, Subject: c.Subject.String(), Issuer: c.Issuer.String(),
			Root: bytes.Equal(c.RawSubject, c.RawIssuer), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
			Expired: now.After(c.NotAfter), ExpiresSoon: now.Add(30 * 24 * time.Hour).After(c.NotAfter), SHA256: fingerprint(c.Raw),
			Removable: source == "uploaded"})
	}
	return out
}

func crlInfo(file, source string, b []byte, now time.Time) CRLInfo {
	crl, err := parseCRL(b)
	if err != nil {
		return CRLInfo{File: file, Source: source, Error: err.Error()}
	}
	return CRLInfo{File: file, Source: source, Issuer: crl.Issuer.String(), ThisUpdate: crl.ThisUpdate.UTC(), NextUpdate: crl.NextUpdate.UTC(),
		Stale: !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate), Revoked: len(crl.RevokedCertificateEntries), Removable: source == "uploaded"}
}

func (c *Console) devicesView() (*DevicesView, error) {
	d := c.opt.Devices
	if d == nil {
		return nil, errNoDevices
	}
	now := c.opt.Now()
	v := &DevicesView{CAs: []CAInfo{}, CRLs: []CRLInfo{}, PassThrough: []PassThroughEntry{}, StaticBypass: slices.Clone(d.StaticBypass)}
	if v.StaticBypass == nil {
		v.StaticBypass = []string{}
	}
	if d.ApplianceCA != nil {
		if infos := caInfos("appliance CA", "appliance", certificatesOnly(d.ApplianceCA()), now); len(infos) > 0 {
			v.ApplianceCA = &infos[0]
		}
	}
	if d.Live != nil {
		v.Live = d.Live()
	}
	if d.Configured != nil {
		cas, crls := d.Configured()
		for _, p := range cas {
			b, err := os.ReadFile(p)
			if err != nil {
				v.CAs = append(v.CAs, CAInfo{File: p, Source: "configured", Error: err.Error()})
				continue
			}
			v.CAs = append(v.CAs, caInfos(p, "configured", b, now)...)
		}
		for _, p := range crls {
			b, err := os.ReadFile(p)
			if err != nil {
				v.CRLs = append(v.CRLs, CRLInfo{File: p, Source: "configured", Error: err.Error()})
				continue
			}
			v.CRLs = append(v.CRLs, crlInfo(p, "configured", b, now))
		}
	}
	files, _, err := c.trayFiles()
	if err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(mapsKeys(files)) {
		switch {
		case strings.HasPrefix(k, extDeviceCA):
			v.CAs = append(v.CAs, caInfos(k, "uploaded", files[k], now)...)
		case strings.HasPrefix(k, extDeviceCRL):
			v.CRLs = append(v.CRLs, crlInfo(k, "uploaded", files[k], now))
		}
	}
	if tv, err := c.trayView(); err == nil {
		for _, ch := range tv.Changes {
			if strings.HasPrefix(ch.File, "@devices/") {
				v.Pending = append(v.Pending, ch.Summary)
			}
		}
	}
	if d.PassThrough != nil {
		v.PassThroughOn = true
		v.PassThrough = append(v.PassThrough, d.PassThrough()...)
	}
	return v, nil
}

// ---- API ----

func (c *Console) apiDevices(w http.ResponseWriter, _ *http.Request, _ *session) {
	v, err := c.devicesView()
	if err != nil {
		apiError(w, devicesStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func devicesStatus(err error) int {
	if errors.Is(err, errNoDevices) {
		return http.StatusNotFound
	}
	return trayStatus(err)
}

// applianceCA serves the CA certificate (PEM) for devices to trust.
func (c *Console) applianceCA(w http.ResponseWriter, r *http.Request, s *session) {
	d := c.opt.Devices
	if d == nil || d.ApplianceCA == nil {
		http.Error(w, errNoDevices.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `attachment; filename="portcullis-ca.crt"`)
	_, _ = w.Write(certificatesOnly(d.ApplianceCA()))
}

// certificatesOnly keeps the CERTIFICATE blocks of a PEM text: whatever a
// hook hands over, no key leaves.
func certificatesOnly(b []byte) []byte {
	var out bytes.Buffer
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: blk.Bytes})
		}
	}
	return out.Bytes()
}

// deviceUploadInput is POST /api/v1/devices/cas and /crls.
type deviceUploadInput struct {
	PEM string `json:"pem"`
	// DERBase64 is a DER file instead (JSON strings cannot carry binary).
	DERBase64 string `json:"der_base64"`
	Note      string `json:"note"`
}

func (c *Console) apiDeviceUpload(kind string) sessionHandler {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		var in deviceUploadInput
		if err := decodeJSON(r, &in); err != nil {
			apiError(w, http.StatusBadRequest, err.Error())
			return
		}
		text := in.PEM
		if in.DERBase64 != "" {
			if in.PEM != "" {
				apiError(w, http.StatusBadRequest, "pem or der_base64, not both")
				return
			}
			der, err := base64.StdEncoding.DecodeString(in.DERBase64)
			if err != nil {
				apiError(w, http.StatusBadRequest, "der_base64: not base64")
				return
			}
			text = string(der)
		}
		c.apiStageDevice(w, r, s, stageInput{Kind: kind, Content: &text, Note: in.Note})
	}
}

func (c *Console) apiDeviceRemove(w http.ResponseWriter, r *http.Request, s *session) {
	c.apiStageDevice(w, r, s, stageInput{Kind: ChangeDeviceRemove, File: r.URL.Query().Get("file"), Note: r.URL.Query().Get("note")})
}

func (c *Console) apiStageDevice(w http.ResponseWriter, r *http.Request, s *session, in stageInput) {
	if c.opt.Devices == nil {
		apiError(w, http.StatusNotFound, errNoDevices.Error())
		return
	}
	ch, problems, err := c.stageChange(r, s, in)
	switch {
	case err != nil:
		apiError(w, trayStatus(err), err.Error())
	case len(problems) > 0:
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": problemText(problems), "problems": problems})
	default:
		writeJSON(w, http.StatusCreated, ch)
	}
}

func problemText(ps []Problem) string {
	var lines []string
	for _, p := range ps {
		lines = append(lines, p.Text)
	}
	return strings.Join(lines, "; ")
}

func (c *Console) apiPassThrough(w http.ResponseWriter, _ *http.Request, _ *session) {
	d := c.opt.Devices
	if d == nil || d.PassThrough == nil {
		apiError(w, http.StatusNotFound, "this appliance does not report a pass-through list")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"learnt": d.PassThrough(), "static": d.StaticBypass})
}

// removePassThrough removes a learnt entry at once: the list is the
// proxy's running memory, not a file, so there is nothing to stage (the
// next pinned handshake learns it again).
func (c *Console) removePassThrough(r *http.Request, s *session, host, family string) error {
	d := c.opt.Devices
	if d == nil || d.RemovePassThrough == nil {
		return errors.New("this appliance does not report a pass-through list")
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("%w: name the host of the entry", ErrBadChange)
	}
	if !d.RemovePassThrough(host, family) {
		return errNoPassThrough
	}
	c.record(r, s, auditPassThroughRemove, host, "family "+orAll(family))
	return nil
}

var errNoPassThrough = errors.New("no such pass-through entry (it may have expired)")

const auditPassThroughRemove = "passthrough_removed"

func orAll(f string) string {
	if f == "" {
		return "(all)"
	}
	return f
}

func (c *Console) apiPassThroughRemove(w http.ResponseWriter, r *http.Request, s *session) {
	err := c.removePassThrough(r, s, r.URL.Query().Get("host"), r.URL.Query().Get("family"))
	switch {
	case errors.Is(err, errNoPassThrough):
		apiError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrBadChange):
		apiError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		apiError(w, http.StatusNotFound, err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// ---- page ----

func (c *Console) devicesPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderDevices(w, r, s, http.StatusOK, "")
}

func (c *Console) renderDevices(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	v, err := c.devicesView()
	if err != nil {
		msg = err.Error()
		v = &DevicesView{}
	}
	flash := ""
	switch r.URL.Query().Get("done") {
	case "staged":
		flash = "Change added to the pending changes: apply it there."
	case "removed":
		flash = "Pass-through entry removed."
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	c.render(w, r, s, "devices", view{Title: "Devices and certificates", Nav: "devices", Error: msg, Flash: flash, D: v})
}

// uploadOf is the form's upload: the file if one was chosen, else the
// pasted text.
func uploadOf(r *http.Request) (string, error) {
	if f, _, err := r.FormFile("file"); err == nil {
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxDeviceUpload+1))
		if err != nil {
			return "", err
		}
		if len(b) > 0 {
			return string(b), nil
		}
	}
	return r.PostFormValue("pem"), nil
}

func (c *Console) devicesUploadForm(kind string) sessionHandler {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		text, err := uploadOf(r)
		if err != nil {
			c.renderDevices(w, r, s, http.StatusBadRequest, "upload: "+err.Error())
			return
		}
		c.devicesStageForm(w, r, s, stageInput{Kind: kind, Content: &text, Note: r.PostFormValue("note")})
	}
}

func (c *Console) devicesRemoveForm(w http.ResponseWriter, r *http.Request, s *session) {
	c.devicesStageForm(w, r, s, stageInput{Kind: ChangeDeviceRemove, File: r.PostFormValue("file")})
}

func (c *Console) devicesStageForm(w http.ResponseWriter, r *http.Request, s *session, in stageInput) {
	_, problems, err := c.stageChange(r, s, in)
	switch {
	case err != nil:
		c.renderDevices(w, r, s, trayStatus(err), err.Error())
	case len(problems) > 0:
		c.renderDevices(w, r, s, http.StatusUnprocessableEntity, "Refused: "+problemText(problems))
	default:
		http.Redirect(w, r, "/devices?done=staged", http.StatusSeeOther)
	}
}

func (c *Console) passThroughRemoveForm(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.removePassThrough(r, s, r.PostFormValue("host"), r.PostFormValue("family")); err != nil {
		c.renderDevices(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	http.Redirect(w, r, "/devices?done=removed", http.StatusSeeOther)
}
