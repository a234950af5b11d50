package session

import (
	"io"
	"strings"
	"testing"
)

func FuzzMultipart(f *testing.F) {
	for _, s := range []string{
		"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nxx\r\n--b--\r\n",
		"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\r\n--b--",
		"preamble\r\n--b\r\n\r\n\r\n--b--",
		"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nxx",
		"--b--",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		total := 0
		_ = WalkMultipart(strings.NewReader(body), "b", PartLimits{MaxParts: 50, MaxPartHeader: 1024}, func(p *Part) error {
			n, err := io.Copy(io.Discard, p)
			total += int(n)
			return err
		})
		if total > len(body) {
			t.Fatalf("parts yielded %d bytes from a %d-byte body", total, len(body))
		}
	})
}

func FuzzBodyFields(f *testing.F) {
	f.Add("application/json", `{"a":{"b":[1,"x",{"c":null}]},"text":"4111 1111 1111 1111"}`)
	f.Add("application/x-www-form-urlencoded", "do%5Bsave%5D=1&wikitext=a+b&x=%zz")
	f.Add("multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nxx\r\n--b--\r\n")
	f.Add("application/json", `[[[[[[`)
	f.Fuzz(func(t *testing.T, ct, body string) {
		fl, _ := ReadFields(ct, []byte(body), "q=1")
		if fl.Len() > maxFields {
			t.Fatalf("%d fields", fl.Len())
		}
		// A value is bounded by the body: JSON decoding turns each invalid
		// UTF-8 byte into U+FFFD (three bytes), so up to three times it.
		for name, vs := range fl.vals {
			for _, v := range vs {
				if len(v) > 3*len(body) {
					t.Fatalf("field %q longer than the body allows", name)
				}
			}
		}
	})
}
