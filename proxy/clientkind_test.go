package proxy

import (
	"errors"
	"testing"
	"time"
)

func TestPassThroughListBounds(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newPassThrough(&ClientConfig{PassThroughTTL: time.Minute, PassThroughMax: 2})
	p.now = func() time.Time { return now }
	p.learn("a.example", "curl")
	now = now.Add(time.Second)
	p.learn("b.example", "curl")
	if !p.has("a.example", "curl") || p.has("a.example", "python") {
		t.Fatal("entries are per host and client family")
	}
	now = now.Add(time.Second)
	p.learn("c.example", "curl") // full: the entry expiring first goes
	if p.has("a.example", "curl") || !p.has("b.example", "curl") || !p.has("c.example", "curl") {
		t.Fatal("the oldest entry was not the one dropped")
	}
	now = now.Add(2 * time.Minute)
	if p.has("b.example", "curl") {
		t.Fatal("an expired entry still splices")
	}
	s := &Server{passthrough: p}
	p.learn("d.example", "git")
	if l := s.PassThrough(); len(l) != 1 || l[0].Host != "d.example" || l[0].Family != "git" {
		t.Fatalf("list %+v", l)
	}
	if s.RemovePassThrough("nope.example", "") || !s.RemovePassThrough("d.example", "") || len(s.PassThrough()) != 0 {
		t.Fatal("remove")
	}
}

func TestPinningFailureSignatures(t *testing.T) {
	for msg, want := range map[string]bool{
		"remote error: tls: unknown certificate authority":  true,
		"remote error: tls: bad certificate":                true,
		"local error: tls: bad record MAC":                  true,
		"EOF":                                               false,
		"read tcp: i/o timeout":                             false,
		"remote error: tls: protocol version not supported": false,
	} {
		if got := pinningFailure(errors.New(msg)); got != want {
			t.Errorf("%q: %v, want %v", msg, got, want)
		}
	}
}
