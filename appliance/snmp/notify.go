package snmp

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors Notify returns that callers may want to tell apart.
var (
	// ErrNotConnected means no registered session to the master exists at
	// the moment (snmpd down, or the subagent not started or reconnecting).
	ErrNotConnected = errors.New("snmp: no agentx session to send the notification on")
	// ErrSessionEnded means the session broke before the master answered.
	ErrSessionEnded = errors.New("snmp: agentx session ended before the notification was acknowledged")
)

// notifyTimeout bounds the wait for the master's Response when the caller's
// context has no earlier deadline.
const notifyTimeout = 5 * time.Second

// Notify asks the master to send the notification trapOID with vbs, through
// an AgentX Notify PDU (RFC 2741 section 6.2.10). sysUpTime.0 (the master's
// uptime) and snmpTrapOID.0 are prepended as SNMPv2-Trap PDUs require; the
// master then sends a trap or inform to every target its configuration names
// (trapsess, trap2sink, informsink). Notify returns once the master has
// acknowledged the PDU, which says it was accepted, not that any manager
// received it.
func (s *Subagent) Notify(ctx context.Context, trapOID OID, vbs []VarBind) error {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return ErrNotConnected
	}
	all := make([]VarBind, 0, 2+len(vbs))
	all = append(all,
		VarBind{Name: SysUpTimeInstance, Value: TimeTicks(c.masterUptime())},
		VarBind{Name: SnmpTrapOIDInstance, Value: ObjectID(trapOID)})
	all = append(all, vbs...)
	r, err := c.call(ctx, &PDU{Header: Header{Type: PDUNotify}, VarBinds: all})
	if err != nil {
		return fmt.Errorf("notify %v: %w", trapOID, err)
	}
	if r.Error != ErrNone {
		return fmt.Errorf("notify %v: master answered error %d", trapOID, r.Error)
	}
	return nil
}

func (s *Subagent) setCurrent(c *conn, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.cur = c
	} else if s.cur == c {
		s.cur = nil
	}
}

// masterUptime is the master's sysUpTime now, in hundredths of a second,
// extrapolated from the value in its Open response.
func (c *conn) masterUptime() uint32 {
	return c.upBase + uint32(time.Since(c.upAt)/(10*time.Millisecond))
}

// call sends p while the serve loop owns reading and waits for the Response
// the loop hands over.
func (c *conn) call(ctx context.Context, p *PDU) (*PDU, error) {
	p.SessionID, p.PacketID = c.sessionID, c.packetID.Add(1)
	ch := make(chan *PDU, 1)
	c.mu.Lock()
	c.waiters[p.PacketID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, p.PacketID)
		c.mu.Unlock()
	}()
	if err := c.send(p); err != nil {
		return nil, err
	}
	timer := time.NewTimer(notifyTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r, nil
	case <-c.ended:
		return nil, ErrSessionEnded
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, fmt.Errorf("no response from the master within %v", notifyTimeout)
	}
}

// deliver hands a Response to the call waiting for it; Responses nobody
// waits for (late ones, or to a Ping) are dropped.
func (c *conn) deliver(r *PDU) {
	c.mu.Lock()
	ch := c.waiters[r.PacketID]
	c.mu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default:
		}
	}
}
