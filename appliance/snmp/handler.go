package snmp

import "sort"

// Provider returns the current values of every served object, sorted by OID
// (Compare order). It is called once per request PDU, so a GetBulk sees one
// consistent snapshot.
type Provider func() []Var

// maxBulkVarBinds caps a GetBulk response: net-snmp's own limit on a response
// is far lower in practice, and the cap bounds our work per request no matter
// what max-repetitions the master forwards.
const maxBulkVarBinds = 1024

// view is one sorted snapshot with lookup helpers.
type view []Var

func (v view) get(o OID) VarBind {
	i := sort.Search(len(v), func(i int) bool { return v[i].OID.Compare(o) >= 0 })
	if i < len(v) && v[i].OID.Compare(o) == 0 {
		return VarBind{Name: o, Value: v[i].Value}
	}
	return VarBind{Name: o, Value: Value{Type: TypeNoSuchObject}}
}

// next implements GetNext semantics for one SearchRange (RFC 2741 section
// 7.2.3.2): the first object at or after Start (strictly after unless
// Include), below End when End is set; else EndOfMibView named Start.
func (v view) next(sr SearchRange) VarBind {
	i := sort.Search(len(v), func(i int) bool {
		c := v[i].OID.Compare(sr.Start)
		return c > 0 || (c == 0 && sr.Include)
	})
	if i < len(v) && (len(sr.End) == 0 || v[i].OID.Compare(sr.End) < 0) {
		return VarBind{Name: v[i].OID, Value: v[i].Value}
	}
	return VarBind{Name: sr.Start, Value: Value{Type: TypeEndOfMibView}}
}

// answer computes the Response varbinds for a Get, GetNext or GetBulk PDU.
func answer(p *PDU, v view) []VarBind {
	switch p.Type {
	case PDUGet:
		out := make([]VarBind, 0, len(p.Ranges))
		for _, sr := range p.Ranges {
			out = append(out, v.get(sr.Start))
		}
		return out
	case PDUGetNext:
		out := make([]VarBind, 0, len(p.Ranges))
		for _, sr := range p.Ranges {
			out = append(out, v.next(sr))
		}
		return out
	case PDUGetBulk:
		return bulk(p, v)
	}
	return nil
}

// bulk follows RFC 2741 section 7.2.3.3: the first NonRepeaters ranges get
// one GetNext each, the rest are repeated MaxRepetitions times, interleaved
// per repetition, each continuing from its previous answer.
func bulk(p *PDU, v view) []VarBind {
	n := int(p.NonRepeaters)
	if n > len(p.Ranges) {
		n = len(p.Ranges)
	}
	var out []VarBind
	for _, sr := range p.Ranges[:n] {
		out = append(out, v.next(sr))
	}
	rep := append([]SearchRange(nil), p.Ranges[n:]...)
	for r := 0; r < int(p.MaxRepetitions) && len(rep) > 0; r++ {
		allEnd := true
		for i := range rep {
			if len(out) >= maxBulkVarBinds {
				return out
			}
			vb := v.next(rep[i])
			out = append(out, vb)
			if vb.Value.Type != TypeEndOfMibView {
				allEnd = false
				rep[i].Start, rep[i].Include = vb.Name, false
			}
		}
		if allEnd {
			break
		}
	}
	return out
}

// sortVars orders a provider snapshot defensively: lookups binary-search it,
// and an unsorted provider must give wrong-but-safe answers, not loops.
func sortVars(vs []Var) view {
	if !sort.SliceIsSorted(vs, func(i, j int) bool { return vs[i].OID.Compare(vs[j].OID) < 0 }) {
		vs = append([]Var(nil), vs...)
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].OID.Compare(vs[j].OID) < 0 })
	}
	return view(vs)
}
