package session

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/policy"
)

func TestJSONFields(t *testing.T) {
	f, err := ReadFields("application/json; charset=utf-8", []byte(`{"channel":"C1","text":"card 4111","blocks":[{"type":"section","text":{"text":"x"}}],"n":3,"ok":true,"z":null,"text":"last"}`), "call=q")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"channel": "C1", "text": "last", "blocks.0.type": "section", "blocks.0.text.text": "x", "n": "3", "ok": "true", "z": "", "call": "q"} {
		if v, ok := f.Field(k); !ok || v != want {
			t.Errorf("%s = %q, %v; want %q", k, v, ok, want)
		}
	}
	if v, _ := f.Field("blocks"); !strings.HasPrefix(v, `[{"type"`) {
		t.Errorf("blocks raw = %q", v)
	}
	var b bytes.Buffer
	f.Text(&b, "text")
	if b.String() != "card 4111\nlast\n" {
		t.Errorf("Text = %q", b.String())
	}
	for _, bad := range []string{`{"a":`, `{"a":1}x`, `[` + strings.Repeat("[", 100) + `]`, `{"a" 1}`} {
		if _, err := ReadFields("application/json", []byte(bad), ""); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestFormFields(t *testing.T) {
	f, err := ReadFields("application/x-www-form-urlencoded", []byte("id=start&do%5Bsave%5D=1&wikitext=hello+4111&bad=%zz"), "")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"do[save]": "1", "wikitext": "hello 4111", "bad": "%zz", "id": "start"} {
		if v, ok := f.Field(k); !ok || v != want {
			t.Errorf("%s = %q, %v; want %q", k, v, ok, want)
		}
	}
}

func mpBody(parts ...string) string { return strings.Join(parts, "") }

func TestWalkMultipartStrict(t *testing.T) {
	ok := "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nxx\r\n--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../x.txt\"\r\nContent-Type: text/plain\r\n\r\nfile\r\n--b--\r\n"
	var names []string
	if err := WalkMultipart(strings.NewReader(ok), "b", PartLimits{}, func(p *Part) error {
		b, _ := io.ReadAll(p)
		names = append(names, p.FormName+"|"+p.FileName+"|"+string(b))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "a||xx,f|x.txt|file" {
		t.Errorf("parts %v", names)
	}
	for name, body := range map[string]string{
		"truncated":      ok[:60],
		"never closes":   strings.TrimSuffix(ok, "--b--\r\n") + "--b\r\n",
		"no close":       strings.TrimSuffix(ok, "\r\n--b--\r\n"),
		"huge header":    "--b\r\nContent-Disposition: form-data; name=\"a\"\r\nX: " + strings.Repeat("y", 64<<10) + "\r\n\r\nxx\r\n--b--\r\n",
		"too many parts": strings.Repeat("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n", 1001) + "--b--\r\n",
		"empty":          "",
		"garbage":        "hello",
	} {
		err := WalkMultipart(strings.NewReader(body), "b", PartLimits{}, func(*Part) error { return nil })
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestRecognition(t *testing.T) {
	h := func(kv ...string) http.Header {
		x := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			x.Set(kv[i], kv[i+1])
		}
		return x
	}
	dl := &policy.Activity{Kind: "download"}
	for _, tc := range []struct {
		method string
		status int
		h      http.Header
		path   string
		def    *policy.Activity
		name   string
		ok     bool
	}{
		{"GET", 200, h("Content-Disposition", `attachment; filename="a.pdf"; filename*=UTF-8''%E2%82%AC.pdf`, "Content-Type", "text/html"), "/x", nil, "€.pdf", true},
		{"GET", 200, h("Content-Disposition", `attachment; filename=a b.txt`), "/x", nil, "a b.txt", true},
		{"GET", 200, h("Content-Type", "application/pdf"), "/files/report.pdf", nil, "report.pdf", true},
		{"GET", 200, h("Content-Type", "application/pdf"), "/lib/exe/fetch.php", nil, "download.pdf", true},
		{"GET", 200, h("Content-Type", "image/png"), "/logo.png", nil, "", false},
		{"GET", 200, h("Content-Type", "image/png"), "/files/logo.png", dl, "logo.png", true},
		{"GET", 200, h("Content-Type", "text/html"), "/", nil, "", false},
		{"GET", 200, h("Content-Type", "application/json"), "/api", nil, "", false},
		{"HEAD", 200, h("Content-Type", "application/pdf"), "/a.pdf", nil, "", false},
		{"GET", 304, h("Content-Type", "application/pdf"), "/a.pdf", nil, "", false},
		{"GET", 204, h("Content-Disposition", "attachment"), "/a.pdf", nil, "", false},
		{"GET", 206, h("Content-Type", "application/octet-stream"), "/a.bin", nil, "a.bin", true},
	} {
		name, ok := IsDownload(tc.method, tc.status, tc.h, tc.path, tc.def)
		if ok != tc.ok || name != tc.name {
			t.Errorf("%s %d %v %s: %q %v, want %q %v", tc.method, tc.status, tc.h, tc.path, name, ok, tc.name, tc.ok)
		}
	}
}

func TestSpoolGoesToDiskAndRefusesPastMax(t *testing.T) {
	dir := t.TempDir()
	s := newSpool(dir, 10, 25)
	if _, err := s.Write([]byte("0123456789")); err != nil || s.OnDisk() {
		t.Fatal(err, s.OnDisk())
	}
	if _, err := s.Write([]byte("abcdefghij")); err != nil || !s.OnDisk() {
		t.Fatal(err, s.OnDisk())
	}
	if _, err := s.Write([]byte("KLMNOPQRST")); !errors.Is(err, ErrSpoolFull) || string(s.overflow) != "PQRST" {
		t.Fatalf("err %v overflow %q", err, s.overflow)
	}
	b, _ := io.ReadAll(s.Reader())
	if string(b) != "0123456789abcdefghijKLMNO" {
		t.Fatalf("spool %q", b)
	}
	_ = s.Close()
}
