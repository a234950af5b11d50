package snmp

import (
	"testing"
)

func testVars() []Var {
	r := EnterpriseRoot
	return []Var{
		{r.Append(1, 0), Integer(1)},
		{r.Append(2, 0), Counter64(42)},
		{r.Append(3, 0), OctetString("v1")},
		{r.Append(4, 1, 2, 1), OctetString("web")},
		{r.Append(4, 1, 2, 2), OctetString("mail")},
	}
}

func TestAnswerGet(t *testing.T) {
	v := sortVars(testVars())
	got := answer(&PDU{Header: Header{Type: PDUGet}, Ranges: []SearchRange{{Start: EnterpriseRoot.Append(2, 0)}, {Start: EnterpriseRoot.Append(9)}}}, v)
	if got[0].Value.Uint != 42 || got[1].Value.Type != TypeNoSuchObject {
		t.Fatalf("%+v", got)
	}
}

func TestAnswerGetNext(t *testing.T) {
	v := sortVars(testVars())
	r := EnterpriseRoot
	got := answer(&PDU{Header: Header{Type: PDUGetNext}, Ranges: []SearchRange{
		{Start: r},
		{Start: r.Append(1, 0), Include: true},
		{Start: r.Append(1, 0)},
		{Start: r.Append(4, 1, 2, 2)},
		{Start: r.Append(2), End: r.Append(3)},
		{Start: r.Append(2, 0), End: r.Append(3)},
	}}, v)
	want := []string{r.Append(1, 0).String(), r.Append(1, 0).String(), r.Append(2, 0).String(), "", r.Append(2, 0).String(), ""}
	for i, w := range want {
		if w == "" {
			if got[i].Value.Type != TypeEndOfMibView {
				t.Errorf("%d: want endOfMibView, got %+v", i, got[i])
			}
			continue
		}
		if got[i].Name.String() != w {
			t.Errorf("%d: got %v want %v", i, got[i].Name, w)
		}
	}
}

func TestAnswerGetBulk(t *testing.T) {
	v := sortVars(testVars())
	r := EnterpriseRoot
	got := answer(&PDU{Header: Header{Type: PDUGetBulk}, NonRepeaters: 1, MaxRepetitions: 10, Ranges: []SearchRange{
		{Start: r}, {Start: r.Append(2)},
	}}, v)
	// 1 non-repeater + the repeater walks 2.0, 3.0, 4.1.2.1, 4.1.2.2, end.
	if len(got) != 6 || got[0].Name.String() != r.Append(1, 0).String() || got[4].Name.String() != r.Append(4, 1, 2, 2).String() || got[5].Value.Type != TypeEndOfMibView {
		t.Fatalf("%d %+v", len(got), got)
	}
}

func TestUnsortedProvider(t *testing.T) {
	vs := testVars()
	vs[0], vs[4] = vs[4], vs[0]
	v := sortVars(vs)
	if got := v.get(EnterpriseRoot.Append(1, 0)); got.Value.Type != TypeInteger {
		t.Fatalf("%+v", got)
	}
}
