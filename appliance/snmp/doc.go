// Package snmp is Portcullis's own AgentX (RFC 2741) subagent. net-snmp's
// snmpd stays the SNMP engine (it owns SNMPv3 users, authPriv, access
// control and notification targets) and acts as the AgentX master; this
// package connects to its unix socket, registers the PORTCULLIS-MIB subtree
// (mibs/PORTCULLIS-MIB.txt, declared for Go in mib.go), answers Get,
// GetNext and GetBulk requests from a Provider snapshot, and sends
// notifications as AgentX Notify PDUs for snmpd to forward as SNMPv3 traps
// or informs. No maintained Go AgentX library exists, so the subset of the
// protocol a read-only subagent needs is implemented here: PDU framing,
// Open/Close/Register/Response/Notify, the request PDUs, and refusal of Set.
package snmp
