package snmp

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"testing"
)

func samplePDUs() []*PDU {
	root := EnterpriseRoot
	return []*PDU{
		{Header: Header{Type: PDUOpen, PacketID: 1}, Timeout: 5, ID: root, Descr: []byte("abcde")},
		{Header: Header{Type: PDUClose, SessionID: 7}, Reason: CloseShutdown},
		{Header: Header{Type: PDURegister, SessionID: 7, PacketID: 2}, Timeout: 5, Priority: 127, Subtree: root},
		{Header: Header{Type: PDURegister, SessionID: 7}, Context: []byte("ctx"), Priority: 1, RangeSubID: 9, Subtree: root.Append(3), UpperBound: 8},
		{Header: Header{Type: PDUGet, SessionID: 7, TransactionID: 3, PacketID: 4}, Ranges: []SearchRange{{Start: root.Append(1, 0)}}},
		{Header: Header{Type: PDUGetNext}, Ranges: []SearchRange{{Start: root, Include: true, End: OID{1, 3, 6, 1, 4, 1, 32473, 2}}, {Start: OID{1, 2}}}},
		{Header: Header{Type: PDUGetBulk}, NonRepeaters: 1, MaxRepetitions: 10, Ranges: []SearchRange{{Start: OID{1, 3, 6, 1, 2, 1}}, {Start: root}}},
		{Header: Header{Type: PDUResponse, SessionID: 1, PacketID: 9}, SysUpTime: 100, Error: 0, VarBinds: []VarBind{
			{Name: root.Append(1, 0), Value: Integer(-3)},
			{Name: root.Append(2, 0), Value: Counter64(1 << 40)},
			{Name: root.Append(3, 0), Value: OctetString("hello")},
			{Name: root.Append(4, 0), Value: ObjectID(root)},
			{Name: root.Append(5, 0), Value: Counter32(4000000000)},
			{Name: root.Append(6, 0), Value: Gauge32(12)},
			{Name: root.Append(7, 0), Value: TimeTicks(99)},
			{Name: root.Append(8, 0), Value: Value{Type: TypeNull}},
			{Name: root.Append(9, 0), Value: Value{Type: TypeNoSuchObject}},
			{Name: OID{1, 3, 6, 1, 300, 1}, Value: Value{Type: TypeEndOfMibView}}, // 300 > 255: no prefix compression
		}},
		{Header: Header{Type: PDUTestSet}, VarBinds: []VarBind{{Name: root.Append(1, 0), Value: Integer(1)}}},
		{Header: Header{Type: PDUCleanupSet}},
		{Header: Header{Type: PDUPing, SessionID: 3}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, p := range samplePDUs() {
		b, err := Encode(p)
		if err != nil {
			t.Fatalf("encode %v: %v", p.Type, err)
		}
		if len(b)%4 != 0 {
			t.Fatalf("type %v: length %d not aligned", p.Type, len(b))
		}
		q, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %v: %v\n%s", p.Type, err, hex.Dump(b))
		}
		want := *p
		want.Version = 1
		want.Flags = FlagNetworkByteOrder
		if len(p.Context) > 0 {
			want.Flags |= FlagNonDefaultContext
		}
		want.PayloadLength = uint32(len(b) - HeaderLen)
		if !reflect.DeepEqual(norm(&want), norm(q)) {
			t.Errorf("type %v round trip:\n got %+v\nwant %+v", p.Type, q, &want)
		}
		b2, _ := Encode(q)
		if !bytes.Equal(b, b2) {
			t.Errorf("type %v: re-encoding differs", p.Type)
		}
	}
}

// norm maps empty slices to nil so DeepEqual compares content.
func norm(p *PDU) *PDU {
	q := *p
	if len(q.Descr) == 0 {
		q.Descr = nil
	}
	if len(q.ID) == 0 {
		q.ID = nil
	}
	if len(q.Subtree) == 0 {
		q.Subtree = nil
	}
	q.Ranges = nil
	for _, r := range p.Ranges {
		if len(r.End) == 0 {
			r.End = nil
		}
		q.Ranges = append(q.Ranges, r)
	}
	return &q
}

// TestWireFormat pins the exact bytes of a Register PDU against RFC 2741:
// header, then timeout/priority/range_subid/reserved, then the OID with
// prefix 4 (1.3.6.1.4) and sub-ids 1.32473.1.
func TestWireFormat(t *testing.T) {
	b, err := Encode(&PDU{Header: Header{Type: PDURegister, SessionID: 0x01020304, TransactionID: 5, PacketID: 6}, Timeout: 5, Priority: 127, Subtree: OID{1, 3, 6, 1, 4, 1, 32473, 1}})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("01031000" + "01020304" + "00000005" + "00000006" + "00000014" +
		"057f0000" + "03040000" + "00000001" + "00007ed9" + "00000001")
	if !bytes.Equal(b, want) {
		t.Fatalf("got\n%s want\n%s", hex.Dump(b), hex.Dump(want))
	}
}

// TestLittleEndian checks that PDUs without NETWORK_BYTE_ORDER decode.
func TestLittleEndian(t *testing.T) {
	b, _ := hex.DecodeString("01050000" + "07000000" + "01000000" + "02000000" + "14000000" +
		"03040000" + "01000000" + "d97e0000" + "01000000" + "00000000")
	p, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.SessionID != 7 || len(p.Ranges) != 1 || p.Ranges[0].Start.String() != "1.3.6.1.4.1.32473.1" {
		t.Fatalf("got %+v", p)
	}
}

func TestDecodeErrors(t *testing.T) {
	good, _ := Encode(samplePDUs()[7])
	cases := map[string][]byte{
		"empty":     nil,
		"short":     good[:10],
		"truncated": good[:len(good)-4],
		"version":   append([]byte{2}, good[1:]...),
		"trailing":  append(append([]byte(nil), good...), 0, 0, 0, 0),
		"type":      append([]byte{1, 99}, good[2:]...),
	}
	for name, b := range cases {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestOID(t *testing.T) {
	o, err := ParseOID(".1.3.6.1.4.1.32473")
	if err != nil || o.Compare(EnterpriseRoot) != 0 || o.String() != "1.3.6.1.4.1.32473" {
		t.Fatalf("%v %v", o, err)
	}
	if _, err := ParseOID("1.x"); err == nil {
		t.Fatal("want error")
	}
	if (OID{1, 2}).Compare(OID{1, 2, 0}) >= 0 || (OID{1, 3}).Compare(OID{1, 2, 9}) <= 0 {
		t.Fatal("compare")
	}
	if !EnterpriseRoot.Append(1).HasPrefix(EnterpriseRoot) || EnterpriseRoot.HasPrefix(EnterpriseRoot.Append(1)) {
		t.Fatal("prefix")
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range samplePDUs() {
		b, _ := Encode(p)
		f.Add(b)
	}
	f.Add([]byte{1, 5, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode and decode to the same PDU.
		b2, err := Encode(p)
		if err != nil {
			return
		}
		if _, err := Decode(b2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
