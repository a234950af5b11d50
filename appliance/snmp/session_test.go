package snmp

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// fakeMaster accepts one subagent connection and plays the master's side.
type fakeMaster struct {
	t *testing.T
	c net.Conn
}

func (m *fakeMaster) read() *PDU {
	m.t.Helper()
	_ = m.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hb := make([]byte, HeaderLen)
	if _, err := io.ReadFull(m.c, hb); err != nil {
		m.t.Fatalf("master read: %v", err)
	}
	h, err := DecodeHeader(hb)
	if err != nil {
		m.t.Fatal(err)
	}
	b := append(hb, make([]byte, h.PayloadLength)...)
	if _, err := io.ReadFull(m.c, b[HeaderLen:]); err != nil {
		m.t.Fatal(err)
	}
	p, err := Decode(b)
	if err != nil {
		m.t.Fatal(err)
	}
	return p
}

func (m *fakeMaster) write(p *PDU) {
	m.t.Helper()
	b, err := Encode(p)
	if err != nil {
		m.t.Fatal(err)
	}
	if _, err := m.c.Write(b); err != nil {
		m.t.Fatal(err)
	}
}

// handshake answers Open (assigning session 42) and Register.
func (m *fakeMaster) handshake() {
	m.t.Helper()
	open := m.read()
	if open.Type != PDUOpen || open.ID.Compare(EnterpriseRoot) != 0 {
		m.t.Fatalf("want Open, got %+v", open)
	}
	m.write(&PDU{Header: Header{Type: PDUResponse, SessionID: 42, PacketID: open.PacketID}})
	reg := m.read()
	if reg.Type != PDURegister || reg.SessionID != 42 || reg.Subtree.Compare(EnterpriseRoot) != 0 {
		m.t.Fatalf("want Register, got %+v", reg)
	}
	m.write(&PDU{Header: Header{Type: PDUResponse, SessionID: 42, PacketID: reg.PacketID}})
}

// TestFakeMaster covers what real snmpd does not easily trigger: TestSet
// refusal, a garbage PDU, reconnect after the master drops the connection,
// and Close on shutdown.
func TestFakeMaster(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sa := &Subagent{Provider: func() []Var { return testVars() }, Retry: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sa.Run(ctx, sock) }()

	accept := func() *fakeMaster {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return &fakeMaster{t: t, c: c}
	}
	m := accept()
	m.handshake()

	m.write(&PDU{Header: Header{Type: PDUTestSet, SessionID: 42, TransactionID: 7, PacketID: 100},
		VarBinds: []VarBind{{Name: EnterpriseRoot.Append(1, 0), Value: Integer(5)}}})
	if r := m.read(); r.Type != PDUResponse || r.PacketID != 100 || r.TransactionID != 7 || r.Error != ErrNotWritable || r.Index != 1 {
		t.Fatalf("TestSet answer %+v", r)
	}
	// A well-framed PDU with an unknown varbind type gets parseError and
	// the session stays up.
	bad, _ := Encode(&PDU{Header: Header{Type: PDUTestSet, SessionID: 42, PacketID: 101}, VarBinds: []VarBind{{Name: OID{1}, Value: Value{Type: TypeNull}}}})
	bad[HeaderLen+1] = 99 // varbind type low byte (network order)
	if _, err := m.c.Write(bad); err != nil {
		t.Fatal(err)
	}
	if r := m.read(); r.Error != ErrParseError || r.PacketID != 101 {
		t.Fatalf("garbage answer %+v", r)
	}
	m.write(&PDU{Header: Header{Type: PDUGet, SessionID: 42, PacketID: 102}, Ranges: []SearchRange{{Start: EnterpriseRoot.Append(2, 0)}}})
	if r := m.read(); len(r.VarBinds) != 1 || r.VarBinds[0].Value.Uint != 42 {
		t.Fatalf("Get answer %+v", r)
	}

	// Master restart: drop the connection; the subagent must come back.
	m.c.Close()
	m = accept()
	m.handshake()

	cancel()
	if p := m.read(); p.Type != PDUClose || p.Reason != CloseShutdown || p.SessionID != 42 {
		t.Fatalf("want Close(shutdown), got %+v", p)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}
