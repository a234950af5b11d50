package rewrite

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestQuery(t *testing.T) {
	m := newTestMapper()
	cases := []struct{ in, want string }{
		{"client_id=x&redirect_uri=https%3A%2F%2Fapp.example.com.gw.test%2Fcb&state=s%20t",
			"client_id=x&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&state=s%20t"},
		{"post_logout_redirect_uri=https://app.example.com.gw.test/bye", "post_logout_redirect_uri=https%3A%2F%2Fapp.example.com%2Fbye"},
		{"RelayState=https%3A%2F%2Fapp.example.com.gw.test%2Fdeep%3Fa%3D1", "RelayState=https%3A%2F%2Fapp.example.com%2Fdeep%3Fa%3D1"},
		{"next=https%3A%2F%2Fother.org%2F&x", "next=https%3A%2F%2Fother.org%2F&x"},
		{"a=1&&b=%zz&c", "a=1&&b=%zz&c"},
		{"", ""},
		{"SAMLRequest=abc&RelayState=https%3A%2F%2Fapp.example.com.gw.test%2F&SigAlg=x&Signature=y",
			"SAMLRequest=abc&RelayState=https%3A%2F%2Fapp.example.com.gw.test%2F&SigAlg=x&Signature=y"},
	}
	for _, c := range cases {
		if got := Query(c.in, m); got != c.want {
			t.Errorf("Query(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestFormBody(t *testing.T) {
	m := newTestMapper()
	in := "user=a%40b&redirect_uri=https%3A%2F%2Flogin.example.com.gw.test%2Fcb&next=%2Frel&empty=&flag"
	want := "user=a%40b&redirect_uri=https%3A%2F%2Flogin.example.com%2Fcb&next=%2Frel&empty=&flag"
	var out bytes.Buffer
	if err := FormBody(&out, strings.NewReader(in), m); err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Errorf("got  %s\nwant %s", out.String(), want)
	}
}

// TestFormBodyLarge streams a 64 MiB body of many fields through FormBody
// with a reader that hands out small pieces, and checks the output field by
// field without holding it.
func TestFormBodyLarge(t *testing.T) {
	m := newTestMapper()
	const fields = 200_000
	field := "f=" + strings.Repeat("v", 300) + "&u=https%3A%2F%2Fapp.example.com.gw.test%2Fx&"
	src := &repeatReader{s: field, n: fields}
	counter := &fieldCounter{want: "u=https%3A%2F%2Fapp.example.com%2Fx"}
	if err := FormBody(counter, io.LimitReader(src, int64(len(field)*fields)), m); err != nil {
		t.Fatal(err)
	}
	if counter.hits != fields {
		t.Fatalf("mapped %d fields, want %d", counter.hits, fields)
	}
	if counter.bytes != int64(len(field)*fields-fields*len(".gw.test")) {
		t.Fatalf("output %d bytes", counter.bytes)
	}
	big := strings.NewReader("a=" + strings.Repeat("x", MaxFormField+1))
	if err := FormBody(io.Discard, big, m); !errors.Is(err, ErrFieldTooLarge) {
		t.Fatalf("oversized field: %v", err)
	}
}

type repeatReader struct {
	s   string
	n   int
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), 1000)]
	k := copy(p, r.s[r.off:])
	r.off += k
	if r.off == len(r.s) {
		r.off, r.n = 0, r.n-1
	}
	return k, nil
}

// fieldCounter counts output bytes and occurrences of one exact field.
type fieldCounter struct {
	want  string
	hits  int
	bytes int64
	tail  []byte
}

func (c *fieldCounter) Write(p []byte) (int, error) {
	c.bytes += int64(len(p))
	c.tail = append(c.tail, p...)
	for {
		i := bytes.IndexByte(c.tail, '&')
		if i < 0 {
			break
		}
		if string(c.tail[:i]) == c.want {
			c.hits++
		}
		c.tail = c.tail[i+1:]
	}
	c.tail = append([]byte(nil), c.tail...)
	return len(p), nil
}
