package console

import "testing"

// Pages are parsed on first render (pageSet), so a template broken in the
// tree would otherwise show only when someone opens that page.
func TestAllPagesParse(t *testing.T) {
	var p pageSet
	for _, n := range pageNames {
		tp, err := p.get(n)
		if err != nil {
			t.Fatal(err)
		}
		if tp == nil || tp.Lookup("content") == nil {
			t.Fatalf("page %s: parsed without its content block", n)
		}
		again, _ := p.get(n)
		if again != tp {
			t.Fatalf("page %s parsed twice", n)
		}
	}
	if tp, err := p.get("nosuchpage"); tp != nil || err != nil {
		t.Fatalf("unknown page: %v, %v", tp, err)
	}
}
