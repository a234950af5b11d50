package snmp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// PDUType is the AgentX h.type field.
type PDUType uint8

// AgentX PDU types (RFC 2741 section 6.1).
const (
	PDUOpen            PDUType = 1
	PDUClose           PDUType = 2
	PDURegister        PDUType = 3
	PDUUnregister      PDUType = 4
	PDUGet             PDUType = 5
	PDUGetNext         PDUType = 6
	PDUGetBulk         PDUType = 7
	PDUTestSet         PDUType = 8
	PDUCommitSet       PDUType = 9
	PDUUndoSet         PDUType = 10
	PDUCleanupSet      PDUType = 11
	PDUNotify          PDUType = 12
	PDUPing            PDUType = 13
	PDUIndexAllocate   PDUType = 14
	PDUIndexDeallocate PDUType = 15
	PDUAddAgentCaps    PDUType = 16
	PDURemoveAgentCaps PDUType = 17
	PDUResponse        PDUType = 18
)

// Header flags (RFC 2741 section 6.1).
const (
	FlagInstanceRegistration = 0x01
	FlagNewIndex             = 0x02
	FlagAnyIndex             = 0x04
	FlagNonDefaultContext    = 0x08
	FlagNetworkByteOrder     = 0x10
)

// Close reasons (RFC 2741 section 6.2.2).
const (
	CloseOther         = 1
	CloseParseError    = 2
	CloseProtocolError = 3
	CloseTimeouts      = 4
	CloseShutdown      = 5
	CloseByManager     = 6
)

// Response errors: AgentX-specific (RFC 2741 section 6.2.16) and the SNMP
// ones a subagent uses.
const (
	ErrNone                  = 0
	ErrGenErr                = 5
	ErrNotWritable           = 17
	ErrOpenFailed            = 256
	ErrNotOpen               = 257
	ErrUnsupportedContext    = 262
	ErrDuplicateRegistration = 263
	ErrParseError            = 266
	ErrRequestDenied         = 267
	ErrProcessingError       = 268
)

// HeaderLen is the fixed AgentX header size.
const HeaderLen = 20

// MaxPayload bounds what we accept from the master; real PDUs for a small
// subtree are a few kilobytes, and the bound keeps a corrupt length field
// from making us allocate gigabytes.
const MaxPayload = 1 << 20

// Header is the AgentX PDU header.
type Header struct {
	Version       uint8
	Type          PDUType
	Flags         uint8
	SessionID     uint32
	TransactionID uint32
	PacketID      uint32
	PayloadLength uint32
}

// PDU is a decoded AgentX PDU. It is a union: which fields are used depends
// on Type, which keeps the codec one table-free switch instead of a type per
// PDU.
type PDU struct {
	Header
	Context []byte // present when FlagNonDefaultContext is set

	Timeout uint8  // Open, Register
	ID      OID    // Open
	Descr   []byte // Open
	Reason  uint8  // Close

	Priority   uint8  // Register
	RangeSubID uint8  // Register
	Subtree    OID    // Register
	UpperBound uint32 // Register, when RangeSubID != 0

	NonRepeaters   uint16        // GetBulk
	MaxRepetitions uint16        // GetBulk
	Ranges         []SearchRange // Get, GetNext, GetBulk

	SysUpTime uint32    // Response
	Error     uint16    // Response
	Index     uint16    // Response
	VarBinds  []VarBind // Response, TestSet, Notify
}

var errShort = errors.New("snmp: agentx PDU truncated")

// DecodeHeader parses the 20-byte header.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, errShort
	}
	h := Header{Version: b[0], Type: PDUType(b[1]), Flags: b[2]}
	if h.Version != 1 {
		return h, fmt.Errorf("snmp: agentx version %d", h.Version)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if h.Flags&FlagNetworkByteOrder != 0 {
		bo = binary.BigEndian
	}
	h.SessionID = bo.Uint32(b[4:])
	h.TransactionID = bo.Uint32(b[8:])
	h.PacketID = bo.Uint32(b[12:])
	h.PayloadLength = bo.Uint32(b[16:])
	if h.PayloadLength%4 != 0 || h.PayloadLength > MaxPayload {
		return h, fmt.Errorf("snmp: agentx payload length %d", h.PayloadLength)
	}
	return h, nil
}

// Decode parses one complete PDU (header and payload). It never panics on
// malformed input; trailing bytes after the payload are an error.
func Decode(b []byte) (*PDU, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return nil, err
	}
	if uint32(len(b)-HeaderLen) != h.PayloadLength {
		return nil, fmt.Errorf("snmp: agentx payload is %d bytes, header says %d", len(b)-HeaderLen, h.PayloadLength)
	}
	p := &PDU{Header: h}
	r := &reader{b: b[HeaderLen:], bo: binary.LittleEndian}
	if h.Flags&FlagNetworkByteOrder != 0 {
		r.bo = binary.BigEndian
	}
	hasContext := h.Flags&FlagNonDefaultContext != 0
	switch h.Type {
	case PDUOpen:
		p.Timeout = r.u8()
		r.skip(3)
		p.ID, _ = r.oid()
		p.Descr = r.octets()
	case PDUClose:
		p.Reason = r.u8()
		r.skip(3)
	case PDURegister, PDUUnregister:
		if hasContext {
			p.Context = r.octets()
		}
		p.Timeout = r.u8()
		p.Priority = r.u8()
		p.RangeSubID = r.u8()
		r.skip(1)
		p.Subtree, _ = r.oid()
		if p.RangeSubID != 0 {
			p.UpperBound = r.u32()
		}
	case PDUGet, PDUGetNext, PDUGetBulk:
		if hasContext {
			p.Context = r.octets()
		}
		if h.Type == PDUGetBulk {
			p.NonRepeaters = r.u16()
			p.MaxRepetitions = r.u16()
		}
		for r.err == nil && len(r.b) > 0 {
			var sr SearchRange
			sr.Start, sr.Include = r.oid()
			sr.End, _ = r.oid()
			p.Ranges = append(p.Ranges, sr)
		}
	case PDUTestSet, PDUNotify:
		if hasContext {
			p.Context = r.octets()
		}
		p.VarBinds = r.varbinds()
	case PDUCommitSet, PDUUndoSet, PDUCleanupSet:
		// No payload.
	case PDUPing:
		if hasContext {
			p.Context = r.octets()
		}
	case PDUResponse:
		p.SysUpTime = r.u32()
		p.Error = r.u16()
		p.Index = r.u16()
		p.VarBinds = r.varbinds()
	default:
		return nil, fmt.Errorf("snmp: unsupported agentx PDU type %d", h.Type)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("snmp: %d trailing bytes in agentx PDU type %d", len(r.b), h.Type)
	}
	return p, nil
}

// Encode serializes p in network byte order (we always set
// FlagNetworkByteOrder: the master must honour it, and one order keeps the
// encoder simple). PayloadLength is computed, not taken from p.
func Encode(p *PDU) ([]byte, error) {
	w := &writer{b: make([]byte, HeaderLen, 64)}
	flags := p.Flags | FlagNetworkByteOrder
	if len(p.Context) > 0 {
		flags |= FlagNonDefaultContext
	} else {
		flags &^= FlagNonDefaultContext
	}
	context := func() {
		if flags&FlagNonDefaultContext != 0 {
			w.octets(p.Context)
		}
	}
	switch p.Type {
	case PDUOpen:
		w.u8(p.Timeout)
		w.skip(3)
		w.oid(p.ID, false)
		w.octets(p.Descr)
	case PDUClose:
		w.u8(p.Reason)
		w.skip(3)
	case PDURegister, PDUUnregister:
		context()
		w.u8(p.Timeout)
		w.u8(p.Priority)
		w.u8(p.RangeSubID)
		w.skip(1)
		w.oid(p.Subtree, false)
		if p.RangeSubID != 0 {
			w.u32(p.UpperBound)
		}
	case PDUGet, PDUGetNext, PDUGetBulk:
		context()
		if p.Type == PDUGetBulk {
			w.u16(p.NonRepeaters)
			w.u16(p.MaxRepetitions)
		}
		for _, sr := range p.Ranges {
			w.oid(sr.Start, sr.Include)
			w.oid(sr.End, false)
		}
	case PDUTestSet, PDUNotify:
		context()
		w.varbinds(p.VarBinds)
	case PDUCommitSet, PDUUndoSet, PDUCleanupSet:
	case PDUPing:
		context()
	case PDUResponse:
		w.u32(p.SysUpTime)
		w.u16(p.Error)
		w.u16(p.Index)
		w.varbinds(p.VarBinds)
	default:
		return nil, fmt.Errorf("snmp: cannot encode agentx PDU type %d", p.Type)
	}
	if w.err != nil {
		return nil, w.err
	}
	b := w.b
	b[0] = 1
	b[1] = byte(p.Type)
	b[2] = flags
	b[3] = 0
	be := binary.BigEndian
	be.PutUint32(b[4:], p.SessionID)
	be.PutUint32(b[8:], p.TransactionID)
	be.PutUint32(b[12:], p.PacketID)
	be.PutUint32(b[16:], uint32(len(b)-HeaderLen))
	return b, nil
}
