package policy

import "testing"

func TestDomainSet(t *testing.T) {
	s, err := NewDomainSet([]string{"Bank.Example.", "*.health.example", "exact.test"})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"bank.example":         true,
		"www.bank.example":     false,
		"health.example":       false,
		"a.health.example":     true,
		"a.b.health.example":   true,
		"evilhealth.example":   false,
		"exact.test":           true,
		"exact.test.evil.test": false,
		"":                     false,
	} {
		if got := s.Match(host); got != want {
			t.Errorf("Match(%q) = %v, want %v", host, got, want)
		}
	}
	if s.Len() != 3 {
		t.Errorf("Len = %d, want 3", s.Len())
	}
}

func TestDomainSetRejectsBadPatterns(t *testing.T) {
	for _, p := range []string{"", "*", "a.*.b", "sp ace.example", "a..b", "*.", "ex*ample.com"} {
		if _, err := NewDomainSet([]string{p}); err == nil {
			t.Errorf("NewDomainSet(%q) accepted a bad pattern", p)
		}
	}
}

func BenchmarkDomainSetMatch(b *testing.B) {
	s, _ := NewDomainSet([]string{"*.example.com", "bank.example", "*.corp.internal"})
	b.ReportAllocs()
	for b.Loop() {
		s.Match("a.very.deep.name.somewhere.example.org")
	}
}
