package dlp

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func scan(t testing.TB, s *Set, text string) *Result {
	t.Helper()
	in := s.NewInspector()
	in.Write([]byte(text))
	return in.Result()
}

func builtins(t testing.TB) *Set {
	s, err := NewSet(nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBuiltinDetectors(t *testing.T) {
	tests := []struct {
		text   string
		idx    int
		want   int
		sample string
	}{
		// Cards: brands, separators, Luhn.
		{"visa 4111111111111111.", IdxCreditCard, 1, "************1111"},
		{"visa 4111 1111 1111 1111", IdxCreditCard, 1, "**** **** **** 1111"},
		{"mc 5500-0000-0000-0004", IdxCreditCard, 1, "****-****-****-0004"},
		{"mc2 2221.0000.0000.0009", IdxCreditCard, 1, "****.****.****.0009"},
		{"amex 3782 822463 10005", IdxCreditCard, 1, "**** ****** *0005"},
		{"amex 378282246310005", IdxCreditCard, 1, ""},
		{"discover 6011111111111117", IdxCreditCard, 1, ""},
		{"jcb 3530111333300000", IdxCreditCard, 1, ""},
		{"diners 3056 930902 5904", IdxCreditCard, 1, ""},
		{"visa19 4111 1111 1111 1111 003", IdxCreditCard, 1, "**** **** **** ***1 003"},
		{"visa16 4111 1111 1111 1111 004", IdxCreditCard, 1, "**** **** **** 1111"}, // 19 digits fail Luhn; the 16-digit reading is valid
		{"bad luhn 4111 1111 1111 1112", IdxCreditCard, 0, ""},
		{"no brand 9111111111111111", IdxCreditCard, 0, ""},
		{"mixed seps 4111-1111 1111-1111", IdxCreditCard, 0, ""},
		{"glued abc4111111111111111", IdxCreditCard, 0, ""},
		{"glued 4111111111111111abc", IdxCreditCard, 0, ""},
		{"too long 41111111111111111111111", IdxCreditCard, 0, ""},
		{"two 4111111111111111,5500000000000004", IdxCreditCard, 2, ""},
		// IBAN.
		{"IBAN DE89370400440532013000 ok", IdxIBAN, 1, "DE****************3000"},
		{"IBAN DE89 3704 0044 0532 0130 00", IdxIBAN, 1, "DE** **** **** **** **30 00"},
		{"GB82WEST12345698765432", IdxIBAN, 1, ""},
		{"NO9386011117947", IdxIBAN, 1, ""},
		{"DE89370400440532013001", IdxIBAN, 0, ""},  // checksum
		{"DE8937040044053201300", IdxIBAN, 0, ""},   // length
		{"XX89370400440532013000", IdxIBAN, 0, ""},  // country
		{"DE89370400440532013000X", IdxIBAN, 0, ""}, // glued
		// SSN.
		{"ssn 123-45-6789", IdxUSSSN, 1, "***-**-6789"},
		{"ssn 123 45 6789", IdxUSSSN, 1, ""},
		{"000-45-6789 666-45-6789 900-45-6789", IdxUSSSN, 0, ""},
		{"123-00-6789 123-45-0000", IdxUSSSN, 0, ""},
		{"078-05-1120", IdxUSSSN, 0, ""},
		{"123456789", IdxUSSSN, 0, ""},
		{"123.45.6789", IdxUSSSN, 0, ""},
		{"tel 123-45-6789-12", IdxUSSSN, 0, ""},
		// Email.
		{"write to john.doe+x@mail.example.com.", IdxEmail, 1, "j*********@mail.example.com"},
		{"a@b.co", IdxEmail, 1, ""},
		{"user@localhost", IdxEmail, 0, ""},
		{"x@example.c0m", IdxEmail, 0, ""},
		{"@example.com", IdxEmail, 0, ""},
		{"a@-bad.example", IdxEmail, 0, ""},
		// SWIFT/BIC.
		{"SWIFT: DEUTDEFF", IdxSWIFTBIC, 1, "DEUTDE**"},
		{"bic deutdeff", IdxSWIFTBIC, 0, ""},
		{"code DEUTDEFF500", IdxSWIFTBIC, 1, "DEUTDE*****"},
		{"NWBKGB2L", IdxSWIFTBIC, 1, ""},
		{"BUSINESS DOCUMENT", IdxSWIFTBIC, 0, ""},
		{"SWIFT DEUTXXFF", IdxSWIFTBIC, 0, ""},
	}
	s := builtins(t)
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			r := scan(t, s, tc.text)
			if got := r.Count(tc.idx); got != tc.want {
				t.Fatalf("%s count = %d, want %d", s.ID(tc.idx), got, tc.want)
			}
			if tc.sample != "" {
				if ss := r.Samples(tc.idx); len(ss) == 0 || ss[0].Masked != tc.sample {
					t.Fatalf("samples %v, want %q", ss, tc.sample)
				}
			}
		})
	}
}

func TestCustomDetectors(t *testing.T) {
	s, err := NewSet([]Custom{
		{ID: "emp", Regex: `EMP-[0-9]{6}`},
		{ID: "words", Keywords: []string{"bluebird", "project falcon", "x-ray"}},
		{ID: "exact", Keywords: []string{"ACME"}, CaseSensitive: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := scan(t, s, "EMP-123456 and EMP-654321, BlueBird bluebirds Project Falcon; X-RAY acme ACME")
	for id, want := range map[string]int{"emp": 2, "words": 3, "exact": 1} {
		if got := r.CountID(id); got != want {
			t.Errorf("%s = %d, want %d", id, got, want)
		}
	}
	if ss := r.Samples(s.Index("emp")); len(ss) != 2 || ss[0].Masked != "EM********" || ss[1].Offset != 15 {
		t.Errorf("samples %+v", ss)
	}
	for _, bad := range []Custom{{ID: "a"}, {ID: "b", Regex: "("}, {ID: "c", Regex: "x*"}, {ID: "credit_card", Regex: "x"}, {ID: "d", Regex: "a", Keywords: []string{"b"}}} {
		if _, err := NewSet([]Custom{bad}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Matches are found wherever the writes split the stream, and each once.
func TestChunkBoundaries(t *testing.T) {
	s, _ := NewSet([]Custom{{ID: "emp", Regex: `EMP-[0-9]{6}`}, {ID: "kw", Keywords: []string{"project falcon"}}})
	unit := "x 4111 1111 1111 1111 y DE89 3704 0044 0532 0130 00 z 123-45-6789 w john@example.com v SWIFT DEUTDEFF EMP-123456 project falcon. "
	text := strings.Repeat("filler text without anything. ", 1200) + strings.Repeat(unit, 500)
	want := scan(t, s, text)
	for i := 0; i < s.Len(); i++ {
		if want.Count(i) != 500 {
			t.Fatalf("%s: %d in one write, want 500", s.ID(i), want.Count(i))
		}
	}
	for _, chunk := range []int{1, 7, 64, 333, 4096, 40000} {
		in := s.NewInspector()
		for off := 0; off < len(text); off += chunk {
			in.Write([]byte(text[off:min(off+chunk, len(text))]))
		}
		r := in.Result()
		for i := 0; i < s.Len(); i++ {
			if r.Count(i) != 500 {
				t.Errorf("chunk %d: %s = %d, want 500", chunk, s.ID(i), r.Count(i))
			}
		}
		if r.Bytes() != int64(len(text)) {
			t.Errorf("bytes %d", r.Bytes())
		}
		// Offsets are stream offsets, the same whatever the chunking.
		if a, b := r.Samples(IdxCreditCard), want.Samples(IdxCreditCard); fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("chunk %d: samples %v, want %v", chunk, a, b)
		}
	}
}

func TestInspectorReuseAndFinish(t *testing.T) {
	s := builtins(t)
	in := s.NewInspector()
	in.Write([]byte("4111111111111111"))
	if in.Result().Count(IdxCreditCard) != 1 {
		t.Fatal("no match")
	}
	if _, err := in.Write([]byte("x")); err != ErrFinished {
		t.Fatalf("write after result: %v", err)
	}
	in.Reset()
	in.Write([]byte("nothing"))
	if in.Result().Total() != 0 {
		t.Fatal("reset kept counts")
	}
}

// Memory is independent of the body size: writing 64 MiB allocates nothing.
func TestInspectorMemoryBounded(t *testing.T) {
	s := builtins(t)
	in := s.NewInspector()
	chunk := bytes.Repeat([]byte("text 4111 1111 1111 1111 more text a@b.example "), 1000)
	allocs := testing.AllocsPerRun(20, func() {
		for i := 0; i < 30; i++ {
			in.Write(chunk)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 1.4 MB written", allocs)
	}
	if cap(in.buf) != lookBehind+WindowSize+lookAhead {
		t.Fatalf("buffer grew to %d", cap(in.buf))
	}
}
