package snmp

import "fmt"

// VarType is an AgentX VarBind type (RFC 2741 section 5.4).
type VarType uint16

// VarBind types. The numbers are the RFC 2741 wire values, which match the
// ASN.1 tags SNMP uses.
const (
	TypeInteger        VarType = 2
	TypeOctetString    VarType = 4
	TypeNull           VarType = 5
	TypeObjectID       VarType = 6
	TypeIPAddress      VarType = 64
	TypeCounter32      VarType = 65
	TypeGauge32        VarType = 66
	TypeTimeTicks      VarType = 67
	TypeOpaque         VarType = 68
	TypeCounter64      VarType = 70
	TypeNoSuchObject   VarType = 128
	TypeNoSuchInstance VarType = 129
	TypeEndOfMibView   VarType = 130
)

func (t VarType) String() string {
	switch t {
	case TypeInteger:
		return "Integer"
	case TypeOctetString:
		return "OctetString"
	case TypeNull:
		return "Null"
	case TypeObjectID:
		return "OID"
	case TypeIPAddress:
		return "IpAddress"
	case TypeCounter32:
		return "Counter32"
	case TypeGauge32:
		return "Gauge32"
	case TypeTimeTicks:
		return "TimeTicks"
	case TypeOpaque:
		return "Opaque"
	case TypeCounter64:
		return "Counter64"
	case TypeNoSuchObject:
		return "NoSuchObject"
	case TypeNoSuchInstance:
		return "NoSuchInstance"
	case TypeEndOfMibView:
		return "EndOfMibView"
	}
	return fmt.Sprintf("VarType(%d)", uint16(t))
}

// Value is a typed SNMP value. Only the field matching Type is meaningful:
// Uint for the numeric types (Integer holds the int32 bit pattern), Bytes for
// OctetString/IpAddress/Opaque, OID for ObjectID.
type Value struct {
	Type  VarType
	Uint  uint64
	Bytes []byte
	OID   OID
}

// Integer returns an INTEGER (Integer32) value.
func Integer(v int32) Value { return Value{Type: TypeInteger, Uint: uint64(uint32(v))} }

// OctetString returns an OCTET STRING value.
func OctetString(s string) Value { return Value{Type: TypeOctetString, Bytes: []byte(s)} }

// ObjectID returns an OBJECT IDENTIFIER value.
func ObjectID(o OID) Value { return Value{Type: TypeObjectID, OID: o} }

// Counter32 returns a Counter32 value.
func Counter32(v uint32) Value { return Value{Type: TypeCounter32, Uint: uint64(v)} }

// Gauge32 returns a Gauge32 value.
func Gauge32(v uint32) Value { return Value{Type: TypeGauge32, Uint: uint64(v)} }

// TimeTicks returns a TimeTicks value (hundredths of a second).
func TimeTicks(v uint32) Value { return Value{Type: TypeTimeTicks, Uint: uint64(v)} }

// Counter64 returns a Counter64 value.
func Counter64(v uint64) Value { return Value{Type: TypeCounter64, Uint: v} }

// Int32 returns an Integer value as a signed number.
func (v Value) Int32() int32 { return int32(uint32(v.Uint)) }

// Var is one object instance served by the subagent.
type Var struct {
	OID   OID
	Value Value
}

// VarBind is a name/value pair on the wire. Exceptions (NoSuchObject,
// EndOfMibView, ...) are values with no payload.
type VarBind struct {
	Name  OID
	Value Value
}

// SearchRange is an AgentX request range (RFC 2741 section 5.2). An empty End
// means "no upper bound".
type SearchRange struct {
	Start   OID
	Include bool // Start itself may be returned (GetNext/GetBulk).
	End     OID
}
