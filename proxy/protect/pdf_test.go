package protect

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

func protectBytes(t testing.TB, in []byte, mime string, o Options) ([]byte, Result, error) {
	t.Helper()
	var out bytes.Buffer
	res, err := Protect(&out, bytes.NewReader(in), int64(len(in)), mime, o)
	return out.Bytes(), res, err
}

// readConf is a pdfcpu configuration for reading test output.
func readConf(userPW string, cmd model.CommandMode) *model.Configuration {
	c, _ := pdfConfig(Options{}, withDefaults(filetype.Limits{}))
	c.UserPW, c.Cmd = userPW, cmd
	return c
}

func decryptPDF(t *testing.T, in []byte, pw string) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := api.Decrypt(bytes.NewReader(in), &out, readConf(pw, model.DECRYPT)); err != nil {
		t.Fatalf("decrypt with the user password: %v", err)
	}
	return out.Bytes()
}

func pdfLabels(t *testing.T, b []byte) filetype.Info {
	t.Helper()
	info, err := filetype.ExtractPDF(bytes.NewReader(b), int64(len(b)), io.Discard, filetype.Limits{})
	if err != nil {
		t.Fatalf("filetype.ExtractPDF: %v", err)
	}
	return info
}

func TestPDFEncryptAndLabel(t *testing.T) {
	in := simplePDF()
	out, res, err := protectBytes(t, in, filetype.PDF.MIME, Options{Label: "Confidential", Encrypt: true, Password: testPassword, SiteID: "72F988BF-86F1-41AF-91AB-2D7CD011DB47"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Result{Labeled: true, Encrypted: true, Type: "pdf"}); res != want {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	if !bytes.HasPrefix(out, []byte("%PDF-2.0")) {
		t.Errorf("encrypted output header %q, want PDF 2.0", out[:8])
	}

	// Without the password it does not open.
	if _, err := api.ReadContext(bytes.NewReader(out), readConf("", model.VALIDATE)); err == nil {
		t.Fatal("opened without a password")
	}
	if _, err := api.ReadContext(bytes.NewReader(out), readConf("wrong", model.VALIDATE)); err == nil {
		t.Fatal("opened with a wrong password")
	}

	// With it, pdfcpu reads the encryption dictionary we asked for.
	ctx, err := api.ReadContext(bytes.NewReader(out), readConf(testPassword, model.VALIDATE))
	if err != nil {
		t.Fatalf("open with the user password: %v", err)
	}
	if err := api.ValidateContext(ctx); err != nil {
		t.Errorf("validate: %v", err)
	}
	enc, err := ctx.EncryptDict()
	if err != nil {
		t.Fatal(err)
	}
	checkInt := func(key string, want int) {
		t.Helper()
		if v := enc.IntEntry(key); v == nil || *v != want {
			t.Errorf("encryption dictionary /%s = %v, want %d", key, v, want)
		}
	}
	checkInt("V", 5)
	checkInt("R", 6)
	checkInt("P", -3392)
	if cf := enc.DictEntry("CF"); cf == nil || cf.DictEntry("StdCF") == nil || cf.DictEntry("StdCF").NameEntry("CFM") == nil || *cf.DictEntry("StdCF").NameEntry("CFM") != "AESV3" {
		t.Errorf("crypt filter %v, want /StdCF with /CFM /AESV3", enc.DictEntry("CF"))
	}
	for _, k := range []string{"StmF", "StrF"} {
		if n := enc.NameEntry(k); n == nil || *n != "StdCF" {
			t.Errorf("/%s = %v, want /StdCF", k, n)
		}
	}
	perms, err := api.PermissionsList(bytes.NewReader(out), readConf(testPassword, model.LISTPERMISSIONS))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pdfcpu permissions: %s", strings.Join(perms, "; "))

	// Decrypted, policy/filetype reads back the label and the text.
	plain := decryptPDF(t, out, testPassword)
	info := pdfLabels(t, plain)
	if got := info.LabelName(); got != "Confidential" {
		t.Fatalf("label read back %q, want Confidential (labels %+v)", got, info.Labels)
	}
	l := info.Labels[0]
	if want := uuid.NewSHA1(labelNamespace, []byte("Confidential")).String(); l.ID != want || l.SiteID != "72f988bf-86f1-41af-91ab-2d7cd011db47" || l.Method != "Standard" {
		t.Errorf("label %+v, want ID %s, the site, method Standard", l, want)
	}
	var text bytes.Buffer
	filetype.ExtractPDF(bytes.NewReader(plain), int64(len(plain)), &text, filetype.Limits{})
	if !strings.Contains(text.String(), "quarterly report") {
		t.Errorf("decrypted text lost: %.200q", text.String())
	}
	// The owner password is random: the same input gives different keys.
	out2, _, err := protectBytes(t, in, filetype.PDF.MIME, Options{Label: "Confidential", Encrypt: true, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, err := api.ReadContext(bytes.NewReader(out2), readConf(testPassword, model.VALIDATE))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ctx.E.O, ctx2.E.O) || bytes.Equal(ctx.E.OE, ctx2.E.OE) {
		t.Error("owner password entries repeat across files")
	}
	qpdfCheck(t, out)
}

// qpdfCheck has qpdf, an independent implementation, read the encryption.
func qpdfCheck(t *testing.T, out []byte) {
	t.Helper()
	qpdf, err := exec.LookPath("qpdf")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("qpdf missing (scripts/deps.sh installs it)")
		}
		t.Log("qpdf not installed: independent check skipped")
		return
	}
	f := filepath.Join(t.TempDir(), "protected.pdf")
	if err := os.WriteFile(f, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(qpdf, "--requires-password", f).Run(); err != nil {
		t.Errorf("qpdf --requires-password: %v (exit 0 means a password is needed)", err)
	}
	show, err := exec.Command(qpdf, "--show-encryption", "--password="+testPassword, f).CombinedOutput()
	if err != nil {
		t.Fatalf("qpdf --show-encryption: %v\n%s", err, show)
	}
	s := string(show)
	for _, want := range []string{
		"R = 6", "P = -3392", "User password = " + testPassword,
		"print low resolution: not allowed", "print high resolution: not allowed",
		"modify document assembly: not allowed", "modify forms: not allowed",
		"modify annotations: not allowed", "modify other: not allowed",
		"extract for any purpose: not allowed", "extract for accessibility: allowed",
		"stream encryption method: AESv3", "string encryption method: AESv3",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("qpdf --show-encryption lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "Supplied password is owner password") {
		t.Errorf("the user password unlocks the owner permissions:\n%s", s)
	}
	if check, err := exec.Command(qpdf, "--check", "--password="+testPassword, f).CombinedOutput(); err != nil {
		t.Errorf("qpdf --check: %v\n%s", err, check)
	}
}

func TestPDFLabelOnly(t *testing.T) {
	out, res, err := protectBytes(t, simplePDF(), filetype.PDF.MIME, Options{Label: "Internal", LabelID: "{E8C2B6E4-7A3D-4C5B-9F1E-0A2B3C4D5E6F}"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Result{Labeled: true, Type: "pdf"}); res != want {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	if bytes.HasPrefix(out, []byte("%PDF-2.0")) {
		t.Error("label-only output changed the PDF version to 2.0")
	}
	info := pdfLabels(t, out)
	if info.LabelName() != "Internal" || info.Labels[0].ID != "e8c2b6e4-7a3d-4c5b-9f1e-0a2b3c4d5e6f" {
		t.Fatalf("labels %+v", info.Labels)
	}
	// pdfcpu sees the Info keys as document properties.
	props, err := api.Properties(bytes.NewReader(out), readConf("", model.LISTPROPERTIES))
	if err != nil {
		t.Fatal(err)
	}
	if props["MSIP_Label_e8c2b6e4-7a3d-4c5b-9f1e-0a2b3c4d5e6f_Name"] != "Internal" {
		t.Errorf("pdfcpu properties %v", props)
	}
	// And the XMP mirror carries it too.
	ctx, err := api.ReadContext(bytes.NewReader(out), readConf("", model.VALIDATE))
	if err != nil {
		t.Fatal(err)
	}
	xmp := catalogXMP(t, ctx)
	if !strings.Contains(xmp, `pdfx:MSIP_Label_e8c2b6e4-7a3d-4c5b-9f1e-0a2b3c4d5e6f_Name="Internal"`) {
		t.Errorf("XMP lacks the label:\n%s", xmp)
	}
}

func catalogXMP(t *testing.T, ctx *model.Context) string {
	t.Helper()
	root, err := ctx.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	sd, _, err := ctx.DereferenceStreamDict(root["Metadata"])
	if err != nil || sd == nil {
		t.Fatalf("no XMP metadata: %v", err)
	}
	if err := sd.Decode(); err != nil {
		t.Fatal(err)
	}
	return string(sd.Content)
}

func TestPDFExistingXMPGetsDescription(t *testing.T) {
	xmp := "<?xpacket begin=\"\ufeff\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF xmlns:rdf=\"" + rdfNS + "\">" +
		`<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:format>application/pdf</dc:format></rdf:Description>` +
		"</rdf:RDF></x:xmpmeta>\n<?xpacket end=\"w\"?>"
	in := buildPDF(textContent(100), "", "/Metadata 7 0 R ", "<< /Type /Metadata /Subtype /XML /Length "+strconv.Itoa(len(xmp))+" >>\nstream\n"+xmp+"\nendstream")
	out, res, err := protectBytes(t, in, filetype.PDF.MIME, Options{Label: "Internal"})
	if err != nil || !res.Labeled {
		t.Fatalf("%+v %v", res, err)
	}
	ctx, err := api.ReadContext(bytes.NewReader(out), readConf("", model.VALIDATE))
	if err != nil {
		t.Fatal(err)
	}
	got := catalogXMP(t, ctx)
	i := strings.Index(xmp, "</rdf:RDF>")
	if !strings.HasPrefix(got, xmp[:i]) || !strings.HasSuffix(got, xmp[i:]) || !strings.Contains(got, `_Name="Internal"`) {
		t.Errorf("XMP not extended in place:\n%s", got)
	}
}

func TestPDFKeepsExistingLabel(t *testing.T) {
	in := buildPDF(textContent(100), labelledInfo(otherLabelID, "Highly Confidential"), "")
	for _, enc := range []bool{false, true} {
		o := Options{Label: "Confidential", Encrypt: enc, Password: testPassword}
		out, res, err := protectBytes(t, in, filetype.PDF.MIME, o)
		if err != nil {
			t.Fatal(err)
		}
		if want := (Result{KeptLabel: "Highly Confidential", Encrypted: enc, Type: "pdf"}); res != want {
			t.Fatalf("encrypt=%v: result %+v, want %+v", enc, res, want)
		}
		if !enc {
			if !bytes.Equal(out, in) {
				t.Error("nothing to change, yet the file changed")
			}
			continue
		}
		info := pdfLabels(t, decryptPDF(t, out, testPassword))
		if len(info.Labels) != 1 || info.LabelName() != "Highly Confidential" {
			t.Errorf("labels after protection %+v", info.Labels)
		}
	}
}

func TestPDFReplacesStaleOwnLabel(t *testing.T) {
	id := uuid.NewSHA1(labelNamespace, []byte("Confidential")).String()
	in := buildPDF(textContent(100), "/MSIP_Label_"+id+"_Enabled (false) /MSIP_Label_"+id+"_Name (Confidential) /MSIP_Label_"+id+"_Removed (true) ", "")
	out, res, err := protectBytes(t, in, filetype.PDF.MIME, Options{Label: "Confidential"})
	if err != nil || !res.Labeled || res.KeptLabel != "" {
		t.Fatalf("%+v %v", res, err)
	}
	if info := pdfLabels(t, out); info.LabelName() != "Confidential" {
		t.Errorf("labels %+v", info.Labels)
	}
	if bytes.Contains(out, []byte("_Removed")) {
		t.Error("stale property of the same label kept")
	}
}

// A stale copy of the label being applied, in both XMP forms, goes; other
// labels' properties and the rest of the packet stay.
func TestPDFReplacesStaleXMPLabel(t *testing.T) {
	id := uuid.NewSHA1(labelNamespace, []byte("Confidential")).String()
	xmp := `<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="` + rdfNS + `">` +
		`<rdf:Description rdf:about="" xmlns:pdfx="` + pdfxNS + `" pdfx:Other="kept" pdfx:MSIP_Label_` + id + `_Enabled='false'` + "\n\t" + `pdfx:MSIP_Label_` + otherLabelID + `_Enabled="false">` +
		`<pdfx:MSIP_Label_` + id + `_Name>Confidential</pdfx:MSIP_Label_` + id + `_Name></rdf:Description></rdf:RDF></x:xmpmeta>`
	in := buildPDF(textContent(100), "", "/Metadata 7 0 R ", "<< /Type /Metadata /Subtype /XML /Length "+strconv.Itoa(len(xmp))+" >>\nstream\n"+xmp+"\nendstream")
	out, res, err := protectBytes(t, in, filetype.PDF.MIME, Options{Label: "Confidential"})
	if err != nil || !res.Labeled {
		t.Fatalf("%+v %v", res, err)
	}
	ctx, err := api.ReadContext(bytes.NewReader(out), readConf("", model.VALIDATE))
	if err != nil {
		t.Fatal(err)
	}
	got := catalogXMP(t, ctx)
	for _, want := range []string{`pdfx:Other="kept"`, `pdfx:MSIP_Label_` + otherLabelID + `_Enabled="false">`, `_Enabled="true"`} {
		if !strings.Contains(got, want) {
			t.Errorf("XMP lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "'false'") || strings.Contains(got, "_Name>Confidential<") {
		t.Errorf("stale label left in XMP:\n%s", got)
	}
	if info := pdfLabels(t, out); info.LabelName() != "Confidential" {
		t.Errorf("labels %+v", info.Labels)
	}
}

// ISO 32000-2 readers prepare passwords with SASLprep, which keeps spaces.
// pdfcpu's own reader refuses them, so qpdf is the reader here.
func TestPDFPasswordWithSpaces(t *testing.T) {
	qpdf, err := exec.LookPath("qpdf")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("qpdf missing (scripts/deps.sh installs it)")
		}
		t.Skip("qpdf not installed")
	}
	const pw = "pâte à crêpes 42"
	out, _, err := protectBytes(t, simplePDF(), filetype.PDF.MIME, Options{Encrypt: true, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "p.pdf")
	if err := os.WriteFile(f, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(qpdf, "--check", "--password="+pw, f).CombinedOutput(); err != nil {
		t.Fatalf("qpdf --check with the password: %v\n%s", err, b)
	}
	if b, err := exec.Command(qpdf, "--check", "--password=pâte à crêpes", f).CombinedOutput(); err == nil {
		t.Fatalf("qpdf opened with a wrong password:\n%s", b)
	}
}

func TestPasswordPreparation(t *testing.T) {
	for _, pw := range []string{"", "tab\tinside", "ﬁle", strings.Repeat("x", 128), "\xff\xfe"} {
		if _, _, err := protectBytes(t, simplePDF(), filetype.PDF.MIME, Options{Encrypt: true, Password: pw}); !errors.Is(err, ErrOptions) {
			t.Errorf("password %q: %v, want ErrOptions", pw, err)
		}
	}
	// Non-ASCII spaces become spaces, as SASLprep maps them.
	if got, err := preparePassword("a\u00a0b"); err != nil || got != "a b" {
		t.Errorf("preparePassword(a NBSP b) = %q, %v", got, err)
	}
}

func TestPDFAlreadyEncrypted(t *testing.T) {
	protected, _, err := protectBytes(t, simplePDF(), filetype.PDF.MIME, Options{Encrypt: true, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	// An empty user password opens for everyone: still encrypted.
	var openForAll bytes.Buffer
	conf := readConf("", model.ENCRYPT)
	conf.OwnerPW = "owner"
	if err := api.Encrypt(bytes.NewReader(simplePDF()), &openForAll, conf); err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{"user password": protected, "empty user password": openForAll.Bytes()} {
		for _, o := range []Options{{Label: "Confidential"}, {Encrypt: true, Password: "x"}} {
			_, _, err := protectBytes(t, in, filetype.PDF.MIME, o)
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("%s, %+v: %v, want ErrUnsupported", name, o, err)
			}
		}
	}
}

func TestPDFMalformed(t *testing.T) {
	good := simplePDF()
	cases := map[string][]byte{
		"empty":         {},
		"header only":   []byte("%PDF-1.7\n"),
		"header, eof":   []byte("%PDF-1.7\n%%EOF\n"),
		"garbage":       []byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> garbage ((( <<<< >> endobj trailer << /Root 1 0 R >>\n%%EOF"),
		"not a pdf":     []byte("GIF89a...."),
		"truncated 1/3": good[:len(good)/3],
		"no catalog":    bytes.Replace(good, []byte("/Type /Catalog /Pages 2 0 R"), []byte("/Type /Nothing            "), 1),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := protectBytes(t, in, filetype.PDF.MIME, Options{Label: "Confidential", Encrypt: true, Password: testPassword})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, filetype.ErrFormat) {
				t.Errorf("%v, want filetype.ErrFormat", err)
			}
			t.Log(err)
		})
	}
	// Cut anywhere: refused as truncated. With an end marker added after
	// the cut, pdfcpu's repair runs: an error or a labelled file, never a
	// panic.
	for n := 0; n < len(good); n += 23 {
		if _, _, err := protectBytes(t, good[:n], filetype.PDF.MIME, Options{Label: "Confidential"}); !errors.Is(err, filetype.ErrFormat) {
			t.Errorf("cut at %d: %v, want ErrFormat", n, err)
		}
		cut := append(bytes.Clone(good[:n]), "\n%%EOF\n"...)
		out, _, err := protectBytes(t, cut, filetype.PDF.MIME, Options{Label: "Confidential", Encrypt: true, Password: testPassword})
		if err == nil {
			ctx, err := api.ReadContext(bytes.NewReader(out), readConf(testPassword, model.VALIDATE))
			if err != nil {
				t.Fatalf("cut at %d: output does not open: %v", n, err)
			}
			var found foundLabels
			if err := infoLabels(ctx, &found); err != nil || found.kept() != "Confidential" {
				t.Errorf("cut at %d: repaired output without the label (%v)", n, err)
			}
		} else if !errors.Is(err, filetype.ErrFormat) {
			t.Errorf("cut at %d, end marker added: %v, want ErrFormat", n, err)
		}
	}
}

// pdfcpu rebuilds a cross-reference table that points nowhere.
func TestPDFRepairsXRef(t *testing.T) {
	in := bytes.Replace(simplePDF(), []byte("startxref\n"), []byte("startxref\n9"), 1)
	out, res, err := protectBytes(t, in, filetype.PDF.MIME, Options{Label: "Confidential"})
	if err != nil || !res.Labeled {
		t.Fatalf("%+v %v", res, err)
	}
	if info := pdfLabels(t, out); info.LabelName() != "Confidential" {
		t.Errorf("labels %+v", info.Labels)
	}
}

func TestPDFTooLarge(t *testing.T) {
	in := simplePDF()
	_, _, err := protectBytes(t, in, filetype.PDF.MIME, Options{Label: "X", Limits: filetype.Limits{MaxInput: int64(len(in) - 1)}})
	if !errors.Is(err, filetype.ErrTooLarge) {
		t.Fatalf("%v, want ErrTooLarge", err)
	}
}

// The gateway protects many downloads at once: pdfcpu must not share
// mutable state between calls (run with -race).
func TestProtectConcurrently(t *testing.T) {
	pdf, docx := simplePDF(), buildZip(t, ooxmlEntries("docx", ""))
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			var err error
			if i%2 == 0 {
				_, _, err = protectBytes(t, pdf, filetype.PDF.MIME, Options{Label: "Confidential", Encrypt: true, Password: testPassword})
			} else {
				_, _, err = protectBytes(t, docx, filetype.DOCX.MIME, Options{Label: "Confidential"})
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
