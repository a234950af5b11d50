package snmp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSocket is net-snmp's default AgentX master socket.
const DefaultSocket = "/var/agentx/master"

// Subagent serves Root from Provider through an AgentX master.
type Subagent struct {
	Root     OID      // subtree to register; EnterpriseRoot when nil
	Provider Provider // values; must only return OIDs under Root
	Descr    string   // shown by the master in its session list
	// Timeout is the per-request timeout we ask the master for (Open and
	// Register), rounded to seconds; 0 lets the master use its default.
	Timeout time.Duration
	// Retry is the delay between reconnect attempts; default 2s.
	Retry  time.Duration
	Logger *slog.Logger // nil discards

	// OnRegistered, if set, is called each time a session has registered
	// Root (tests and readiness probes use it).
	OnRegistered func()

	mu      sync.Mutex
	cur     *conn // the registered session, nil between sessions
	lastErr string
	errAt   time.Time
}

// State reports whether a session to the master is registered, and why the
// last one ended (empty when none ended) and when.
func (s *Subagent) State() (connected bool, lastErr string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil, s.lastErr, s.errAt
}

// Run keeps a session to the master at socketPath ("" means DefaultSocket)
// until ctx ends, reconnecting after errors such as a master restart. It
// closes the session cleanly on shutdown and returns nil then.
func (s *Subagent) Run(ctx context.Context, socketPath string) error {
	if socketPath == "" {
		socketPath = DefaultSocket
	}
	if s.Provider == nil {
		return errors.New("snmp: Subagent.Provider is nil")
	}
	retry := s.Retry
	if retry <= 0 {
		retry = 2 * time.Second
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for {
		err := s.session(ctx, socketPath)
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("agentx session ended, reconnecting", "socket", socketPath, "err", err, "retry", retry)
		s.mu.Lock()
		s.lastErr, s.errAt = fmt.Sprint(err), time.Now()
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
	}
}

// conn is one AgentX session over a stream connection.
type conn struct {
	c         net.Conn
	wmu       sync.Mutex // writes come from the serve loop, Notify and the closer
	sessionID uint32
	packetID  atomic.Uint32

	// The master's sysUpTime from its Open response and when we got it:
	// notifications carry the master's uptime, which is the agent's.
	upBase uint32
	upAt   time.Time

	mu      sync.Mutex
	waiters map[uint32]chan *PDU // Responses awaited by Notify, by packet id
	ended   chan struct{}        // closed when the session is over
}

func (c *conn) send(p *PDU) error {
	b, err := Encode(p)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = c.c.Write(b)
	return err
}

// read returns the next PDU. A malformed PDU whose header is intact is
// reported with the header so the caller can answer parseError.
func (c *conn) read() (*PDU, Header, error) {
	var hb [HeaderLen]byte
	if _, err := io.ReadFull(c.c, hb[:]); err != nil {
		return nil, Header{}, err
	}
	h, err := DecodeHeader(hb[:])
	if err != nil {
		// Framing is lost: the stream cannot be resynchronised.
		return nil, h, err
	}
	b := make([]byte, HeaderLen+int(h.PayloadLength))
	copy(b, hb[:])
	if _, err := io.ReadFull(c.c, b[HeaderLen:]); err != nil {
		return nil, h, err
	}
	p, err := Decode(b)
	if err != nil {
		return nil, h, &parseError{err}
	}
	return p, h, nil
}

type parseError struct{ error }

// request sends p and waits for its Response; only used during setup, when
// the master sends nothing else.
func (c *conn) request(p *PDU, timeout time.Duration) (*PDU, error) {
	p.SessionID, p.PacketID = c.sessionID, c.packetID.Add(1)
	if err := c.send(p); err != nil {
		return nil, err
	}
	_ = c.c.SetReadDeadline(time.Now().Add(timeout))
	defer c.c.SetReadDeadline(time.Time{})
	for {
		r, _, err := c.read()
		if err != nil {
			return nil, err
		}
		if r.Type == PDUResponse && r.PacketID == p.PacketID {
			if r.Error != ErrNone {
				return r, fmt.Errorf("snmp: agentx %d refused: error %d", p.Type, r.Error)
			}
			return r, nil
		}
	}
}

func (s *Subagent) session(ctx context.Context, path string) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	c := &conn{c: nc, ended: make(chan struct{}), waiters: map[uint32]chan *PDU{}}
	done := make(chan struct{})
	closed := make(chan struct{})
	go func() {
		// On shutdown, say goodbye so the master drops our registration at
		// once instead of timing requests out; closing also unblocks read.
		defer close(closed)
		select {
		case <-ctx.Done():
			_ = c.send(&PDU{Header: Header{Type: PDUClose, SessionID: c.sessionID}, Reason: CloseShutdown})
		case <-done:
		}
		nc.Close()
	}()
	// One defer, so done is closed before we wait for the closer goroutine.
	defer func() {
		s.setCurrent(c, false)
		close(c.ended)
		close(done)
		<-closed
	}()

	timeout := uint8(max(0, min(255, s.Timeout/time.Second)))
	root := s.Root
	if root == nil {
		root = EnterpriseRoot
	}
	descr := s.Descr
	if descr == "" {
		descr = "Portcullis AgentX subagent"
	}
	r, err := c.request(&PDU{Header: Header{Type: PDUOpen}, Timeout: timeout, ID: root, Descr: []byte(descr)}, 5*time.Second)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	c.sessionID = r.SessionID
	c.upBase, c.upAt = r.SysUpTime, time.Now()
	if _, err := c.request(&PDU{Header: Header{Type: PDURegister}, Timeout: timeout, Priority: 127, Subtree: root}, 5*time.Second); err != nil {
		return fmt.Errorf("register %v: %w", root, err)
	}
	s.setCurrent(c, true)
	if s.OnRegistered != nil {
		s.OnRegistered()
	}
	return s.serve(c)
}

// serve answers the master until the connection fails or the master closes.
func (s *Subagent) serve(c *conn) error {
	for {
		p, h, err := c.read()
		var pe *parseError
		if errors.As(err, &pe) {
			// RFC 2741 7.1.1: answer parseError and keep the session.
			_ = c.send(&PDU{Header: respHeader(h), Error: ErrParseError})
			continue
		}
		if err != nil {
			return err
		}
		switch p.Type {
		case PDUGet, PDUGetNext, PDUGetBulk:
			resp := &PDU{Header: respHeader(p.Header)}
			if len(p.Context) > 0 {
				resp.Error = ErrUnsupportedContext
			} else {
				resp.VarBinds = answer(p, sortVars(s.snapshot()))
			}
			err = c.send(resp)
		case PDUTestSet:
			// Read-only MIB: refuse at the first varbind.
			err = c.send(&PDU{Header: respHeader(p.Header), Error: ErrNotWritable, Index: 1})
		case PDUCommitSet, PDUUndoSet:
			err = c.send(&PDU{Header: respHeader(p.Header), Error: ErrGenErr})
		case PDUResponse:
			c.deliver(p)
		case PDUCleanupSet:
			// No response (RFC 2741 7.2.4.4).
		case PDUClose:
			return fmt.Errorf("master closed the session (reason %d)", p.Reason)
		default:
			err = c.send(&PDU{Header: respHeader(p.Header), Error: ErrProcessingError})
		}
		if err != nil {
			return err
		}
	}
}

// snapshot calls the provider, turning a provider panic into an empty view
// so one bad metric source cannot take the subagent down.
func (s *Subagent) snapshot() (vs []Var) {
	defer func() {
		if recover() != nil {
			vs = nil
		}
	}()
	return s.Provider()
}

func respHeader(h Header) Header {
	return Header{Type: PDUResponse, SessionID: h.SessionID, TransactionID: h.TransactionID, PacketID: h.PacketID}
}
