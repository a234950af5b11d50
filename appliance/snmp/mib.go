package snmp

// This file is the Go side of mibs/PORTCULLIS-MIB.txt: every object the
// subagent serves or sends is declared here once, with its MIB descriptor,
// and TestMIBMatchesCode checks the two against each other with smidump.

// Kind says what a MIB object is, which decides how its instances are named.
type Kind uint8

const (
	KindScalar       Kind = iota + 1 // one instance, OID.0
	KindColumn                       // one instance per table row, OID.index
	KindNotifyOnly                   // accessible-for-notify: only in notifications
	KindNotification                 // a NOTIFICATION-TYPE
)

// Object is one declared MIB object.
type Object struct {
	Name string // the MIB descriptor
	OID  OID
	Kind Kind
}

// Objects lists every object of PORTCULLIS-MIB that the code uses, in
// declaration order.
var Objects []Object

func declare(name string, kind Kind, parent OID, sub uint32) OID {
	o := parent.Append(sub)
	Objects = append(Objects, Object{Name: name, OID: o, Kind: kind})
	return o
}

// Well-known OIDs a notification starts with (RFC 3418, RFC 1907).
var (
	SysUpTimeInstance   = OID{1, 3, 6, 1, 2, 1, 1, 3, 0}
	SnmpTrapOIDInstance = OID{1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0}
)

var (
	notifications = EnterpriseRoot.Append(0)
	objects       = EnterpriseRoot.Append(1)
	status        = objects.Append(1)
	datapath      = objects.Append(2)
	proxyCounters = objects.Append(3)
	modeEntry     = objects.Append(4, 1) // pcModeTable.pcModeEntry
	appEntry      = objects.Append(5, 1) // pcAppTable.pcAppEntry
	notifyInfo    = objects.Append(6)
)

// Appliance status (pcStatus).
var (
	ObjVersion               = declare("pcVersion", KindScalar, status, 1)
	ObjUptime                = declare("pcUptime", KindScalar, status, 2)
	ObjDatapathAttached      = declare("pcDatapathAttached", KindScalar, status, 3)
	ObjFailMode              = declare("pcFailMode", KindScalar, status, 4)
	ObjActivityHealthy       = declare("pcActivityHealthy", KindScalar, status, 5)
	ObjActivityQueueDepth    = declare("pcActivityQueueDepth", KindScalar, status, 6)
	ObjActivityQueueCapacity = declare("pcActivityQueueCapacity", KindScalar, status, 7)
	ObjActivityCommitLag     = declare("pcActivityCommitLag", KindScalar, status, 8)
	ObjActivityWritten       = declare("pcActivityWritten", KindScalar, status, 9)
	ObjActivityDropped       = declare("pcActivityDropped", KindScalar, status, 10)
	ObjActivityRefused       = declare("pcActivityRefused", KindScalar, status, 11)
	ObjActivityLost          = declare("pcActivityLost", KindScalar, status, 12)
	ObjActivityWriteErrors   = declare("pcActivityWriteErrors", KindScalar, status, 13)
)

// Datapath packet counters (pcDatapath).
var (
	ObjDpSteered           = declare("pcDpSteered", KindScalar, datapath, 1)
	ObjDpEstablished       = declare("pcDpEstablished", KindScalar, datapath, 2)
	ObjDpBypassed          = declare("pcDpBypassed", KindScalar, datapath, 3)
	ObjDpFailClosedSyns    = declare("pcDpFailClosedSyns", KindScalar, datapath, 4)
	ObjDpFailOpenSyns      = declare("pcDpFailOpenSyns", KindScalar, datapath, 5)
	ObjDpFailClosedOrphans = declare("pcDpFailClosedOrphans", KindScalar, datapath, 6)
	ObjDpFailOpenOrphans   = declare("pcDpFailOpenOrphans", KindScalar, datapath, 7)
	ObjDpQuicDropped       = declare("pcDpQuicDropped", KindScalar, datapath, 8)
	ObjDpFragmentDropped   = declare("pcDpFragmentDropped", KindScalar, datapath, 9)
	ObjDpNotIntercepted    = declare("pcDpNotIntercepted", KindScalar, datapath, 10)
	ObjDpMalformed         = declare("pcDpMalformed", KindScalar, datapath, 11)
	ObjDpAssignErrors      = declare("pcDpAssignErrors", KindScalar, datapath, 12)
)

// Proxy counters (pcProxy).
var (
	ObjProxyConnections          = declare("pcProxyConnections", KindScalar, proxyCounters, 1)
	ObjProxyNotTLS               = declare("pcProxyNotTls", KindScalar, proxyCounters, 2)
	ObjProxyHelloMalformed       = declare("pcProxyHelloMalformed", KindScalar, proxyCounters, 3)
	ObjProxyHelloIncomplete      = declare("pcProxyHelloIncomplete", KindScalar, proxyCounters, 4)
	ObjProxyTLSHandshakeFailures = declare("pcProxyTlsHandshakeFailures", KindScalar, proxyCounters, 5)
	ObjProxyIntercepted          = declare("pcProxyIntercepted", KindScalar, proxyCounters, 6)
	ObjProxyBypassed             = declare("pcProxyBypassed", KindScalar, proxyCounters, 7)
	ObjProxyConnectionsBlocked   = declare("pcProxyConnectionsBlocked", KindScalar, proxyCounters, 8)
	ObjProxyRequests             = declare("pcProxyRequests", KindScalar, proxyCounters, 9)
	ObjProxyRequestsBlocked      = declare("pcProxyRequestsBlocked", KindScalar, proxyCounters, 10)
	ObjProxyMisdirected          = declare("pcProxyMisdirected", KindScalar, proxyCounters, 11)
	ObjProxyUpstreamUnverified   = declare("pcProxyUpstreamUnverified", KindScalar, proxyCounters, 12)
	ObjProxyUpstreamErrors       = declare("pcProxyUpstreamErrors", KindScalar, proxyCounters, 13)
	ObjProxyRefusedUnrecorded    = declare("pcProxyRefusedUnrecorded", KindScalar, proxyCounters, 14)
	ObjProxyRecordsFailed        = declare("pcProxyRecordsFailed", KindScalar, proxyCounters, 15)
	ObjProxyLeafCacheHits        = declare("pcProxyLeafCacheHits", KindScalar, proxyCounters, 16)
	ObjProxyLeafCacheMisses      = declare("pcProxyLeafCacheMisses", KindScalar, proxyCounters, 17)
	ObjProxyLeafMints            = declare("pcProxyLeafMints", KindScalar, proxyCounters, 18)
	ObjProxyKeyPoolEmpty         = declare("pcProxyKeyPoolEmpty", KindScalar, proxyCounters, 19)
)

// Decisions by traffic mode (pcModeTable columns), indexed by ModeTransparent...
var (
	ColModeName      = declare("pcModeName", KindColumn, modeEntry, 2)
	ColModeAllowed   = declare("pcModeAllowed", KindColumn, modeEntry, 3)
	ColModeMonitored = declare("pcModeMonitored", KindColumn, modeEntry, 4)
	ColModeBlocked   = declare("pcModeBlocked", KindColumn, modeEntry, 5)
)

// pcModeIndex values.
const (
	ModeTransparent uint32 = 1
	ModeExplicit    uint32 = 2
	ModeSuffix      uint32 = 3
)

// Per-application usage (pcAppTable columns), indexed by app ordinal (1...).
var (
	ColAppID        = declare("pcAppId", KindColumn, appEntry, 2)
	ColAppRequests  = declare("pcAppRequests", KindColumn, appEntry, 3)
	ColAppBlocked   = declare("pcAppBlocked", KindColumn, appEntry, 4)
	ColAppMonitored = declare("pcAppMonitored", KindColumn, appEntry, 5)
	ColAppBytesUp   = declare("pcAppBytesUp", KindColumn, appEntry, 6)
	ColAppBytesDown = declare("pcAppBytesDown", KindColumn, appEntry, 7)
)

// Objects carried in notifications (pcNotifyInfo).
var (
	ObjFailOpenReason = declare("pcFailOpenReason", KindNotifyOnly, notifyInfo, 1)
	ObjFailOpenCount  = declare("pcFailOpenCount", KindNotifyOnly, notifyInfo, 2)
	ObjAlertPolicyID  = declare("pcAlertPolicyId", KindNotifyOnly, notifyInfo, 3)
	ObjAlertSeverity  = declare("pcAlertSeverity", KindNotifyOnly, notifyInfo, 4)
	ObjAlertUser      = declare("pcAlertUser", KindNotifyOnly, notifyInfo, 5)
	ObjAlertApp       = declare("pcAlertApp", KindNotifyOnly, notifyInfo, 6)
	ObjAlertMessage   = declare("pcAlertMessage", KindNotifyOnly, notifyInfo, 7)
)

// pcAlertSeverity values.
const (
	SeverityInfo   int32 = 1
	SeverityLow    int32 = 2
	SeverityMedium int32 = 3
	SeverityHigh   int32 = 4
)

// Notifications (portcullisNotifications).
var (
	TrapFailOpen         = declare("portcullisFailOpen", KindNotification, notifications, 1)
	TrapAlert            = declare("portcullisAlert", KindNotification, notifications, 2)
	TrapActivityDegraded = declare("portcullisActivityDegraded", KindNotification, notifications, 3)
)

// TruthValue encodes SNMPv2-TC TruthValue: true(1), false(2).
func TruthValue(b bool) Value {
	if b {
		return Integer(1)
	}
	return Integer(2)
}

// Scalar names the single instance of a scalar object.
func Scalar(obj OID, v Value) Var { return Var{OID: obj.Append(0), Value: v} }

// Cell names the instance of a column in the row with the given index.
func Cell(column OID, index uint32, v Value) Var { return Var{OID: column.Append(index), Value: v} }

// Instance is the varbind name of a notification object (its .0 instance).
func Instance(obj OID, v Value) VarBind { return VarBind{Name: obj.Append(0), Value: v} }

// DisplayString is an OctetString cut to max octets (DisplayString objects
// in the MIB are SIZE (0..255)); the cut never splits a UTF-8 sequence.
func DisplayString(s string, max int) Value {
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut]
	}
	return OctetString(s)
}
