package snmp

import (
	"encoding/binary"
	"fmt"
)

// internetPrefix is 1.3.6.1, which AgentX compresses into the OID prefix
// byte (RFC 2741 section 5.1).
var internetPrefix = OID{1, 3, 6, 1}

// reader decodes payload fields. Errors are sticky so the decoder reads
// straight through and checks once; every read is bounds-checked, which is
// what keeps Decode panic-free on hostile input.
type reader struct {
	b   []byte
	bo  binary.ByteOrder
	err error
}

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b) < n {
		r.err = errShort
		return false
	}
	return true
}

func (r *reader) skip(n int) {
	if r.need(n) {
		r.b = r.b[n:]
	}
}

func (r *reader) u8() uint8 {
	if !r.need(1) {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := r.bo.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := r.bo.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := r.bo.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// oid reads an AgentX OID and its include flag.
func (r *reader) oid() (OID, bool) {
	n := int(r.u8())
	prefix := r.u8()
	include := r.u8() != 0
	r.skip(1)
	if !r.need(4 * n) {
		return nil, false
	}
	var o OID
	if prefix != 0 {
		o = make(OID, 0, 5+n)
		o = append(o, internetPrefix...)
		o = append(o, uint32(prefix))
	} else {
		o = make(OID, 0, n)
	}
	for i := 0; i < n; i++ {
		o = append(o, r.u32())
	}
	return o, include
}

// octets reads a length-prefixed string padded to a 4-byte boundary.
func (r *reader) octets() []byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.err = errShort
		return nil
	}
	v := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	r.skip(pad(int(n)))
	return v
}

func pad(n int) int { return (4 - n%4) % 4 }

func (r *reader) varbinds() []VarBind {
	var vbs []VarBind
	for r.err == nil && len(r.b) > 0 {
		var vb VarBind
		t := VarType(r.u16())
		r.skip(2)
		vb.Name, _ = r.oid()
		vb.Value.Type = t
		switch t {
		case TypeInteger, TypeCounter32, TypeGauge32, TypeTimeTicks:
			vb.Value.Uint = uint64(r.u32())
		case TypeCounter64:
			vb.Value.Uint = r.u64()
		case TypeOctetString, TypeIPAddress, TypeOpaque:
			vb.Value.Bytes = r.octets()
		case TypeObjectID:
			vb.Value.OID, _ = r.oid()
		case TypeNull, TypeNoSuchObject, TypeNoSuchInstance, TypeEndOfMibView:
		default:
			if r.err == nil {
				r.err = fmt.Errorf("snmp: unknown agentx varbind type %d", t)
			}
		}
		vbs = append(vbs, vb)
	}
	return vbs
}

// writer encodes payload fields in network byte order.
type writer struct {
	b   []byte
	err error
}

func (w *writer) skip(n int) { w.b = append(w.b, make([]byte, n)...) }
func (w *writer) u8(v uint8) { w.b = append(w.b, v) }
func (w *writer) u16(v uint16) {
	w.b = binary.BigEndian.AppendUint16(w.b, v)
}
func (w *writer) u32(v uint32) {
	w.b = binary.BigEndian.AppendUint32(w.b, v)
}
func (w *writer) u64(v uint64) {
	w.b = binary.BigEndian.AppendUint64(w.b, v)
}

// oid writes o, using the 1.3.6.1.x prefix compression when it applies.
func (w *writer) oid(o OID, include bool) {
	var prefix uint8
	sub := o
	if len(o) >= 5 && o[:4].Compare(internetPrefix) == 0 && o[4] > 0 && o[4] < 256 {
		prefix = uint8(o[4])
		sub = o[5:]
	}
	if len(sub) > 128 { // RFC 2578 limit; n_subid is one byte anyway.
		if w.err == nil {
			w.err = fmt.Errorf("snmp: OID %v too long", o)
		}
		return
	}
	w.u8(uint8(len(sub)))
	w.u8(prefix)
	if include {
		w.u8(1)
	} else {
		w.u8(0)
	}
	w.u8(0)
	for _, n := range sub {
		w.u32(n)
	}
}

func (w *writer) octets(v []byte) {
	w.u32(uint32(len(v)))
	w.b = append(w.b, v...)
	w.skip(pad(len(v)))
}

func (w *writer) varbinds(vbs []VarBind) {
	for _, vb := range vbs {
		w.u16(uint16(vb.Value.Type))
		w.skip(2)
		w.oid(vb.Name, false)
		v := vb.Value
		switch v.Type {
		case TypeInteger, TypeCounter32, TypeGauge32, TypeTimeTicks:
			w.u32(uint32(v.Uint))
		case TypeCounter64:
			w.u64(v.Uint)
		case TypeOctetString, TypeIPAddress, TypeOpaque:
			w.octets(v.Bytes)
		case TypeObjectID:
			w.oid(v.OID, false)
		case TypeNull, TypeNoSuchObject, TypeNoSuchInstance, TypeEndOfMibView:
		default:
			if w.err == nil {
				w.err = fmt.Errorf("snmp: cannot encode varbind type %v", v.Type)
			}
		}
	}
}
