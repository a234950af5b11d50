package activity

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Syslog exports events, and alerts, to a syslog receiver over TCP or TLS
// (RFC 5425), one octet-counted frame ("LEN SP MSG", RFC 6587 §3.4.1) per
// record, each stream in commit order. Delivery is at-least-once: the cursor moves only after the
// whole batch was written, and a failed batch is sent again in full on a
// new connection, so receivers de-duplicate on the event id.
//
// Syslog over TCP has no acknowledgements: a write succeeds once the kernel
// took the bytes. To avoid sending a batch into a connection the receiver
// already closed (the write would succeed and the batch be lost), each batch
// first checks the connection for an EOF or reset. A receiver that dies
// while a batch is in flight can still lose that batch's unread tail; only
// an acknowledging protocol (RELP) would close that gap.
//
// Messages are not truncated: receivers must accept 2048 octets and should
// accept 8192 (RFC 5425 §4.3.1), and an event with a very long path can
// exceed that. A Syslog is not safe for concurrent use.
type Syslog struct {
	Store *Store
	// Sink names the cursor (default "syslog").
	Sink string
	// Network is "tcp" or "tls" (default "tls").
	Network string
	// Addr is the receiver's host:port.
	Addr string
	// TLS configures "tls"; nil means the system roots and ServerName from
	// Addr. It is cloned; MinVersion is raised to TLS 1.2 and a config with
	// InsecureSkipVerify is refused: certificate verification is always on.
	TLS *tls.Config
	// Format is "rfc5424" (fields in structured data, the default) or "cef"
	// (a CEF payload as the MSG of an RFC 5424 message).
	Format string
	// Facility defaults to local0 (as does an out-of-range value).
	Facility Facility
	// Hostname defaults to os.Hostname; AppName to "portcullis".
	Hostname string
	AppName  string
	// Batch is the number of events per write (default 500).
	Batch int
	// Poll is how often the store is read when idle (default 200 ms).
	Poll time.Duration
	// Timeout bounds a dial (with the TLS handshake) and a batch write
	// (default 10 s).
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed attempts in
	// Run, doubling from one to the other (defaults 250 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// NoAlerts leaves alerts out. By default alerts (RaiseAlert) go to the
	// same receiver as separate messages with MSGID "alert" and their own
	// cursor, CEF severity from the alert's.
	NoAlerts bool

	conn     net.Conn
	failures int
}

func (s *Syslog) defaults() {
	if s.Sink == "" {
		s.Sink = "syslog"
	}
	if s.Network == "" {
		s.Network = "tls"
	}
	if s.Format == "" {
		s.Format = "rfc5424"
	}
	if s.Hostname == "" {
		s.Hostname, _ = os.Hostname()
	}
	if s.AppName == "" {
		s.AppName = "portcullis"
	}
	if s.Batch <= 0 {
		s.Batch = 500
	}
	if s.Poll <= 0 {
		s.Poll = 200 * time.Millisecond
	}
	if s.Timeout <= 0 {
		s.Timeout = 10 * time.Second
	}
	if s.MinBackoff <= 0 {
		s.MinBackoff = 250 * time.Millisecond
	}
	if s.MaxBackoff < s.MinBackoff {
		s.MaxBackoff = max(30*time.Second, s.MinBackoff)
	}
}

// Run exports until ctx ends, then delivers what is already stored (while
// the receiver takes it) and returns. After an error it waits a backoff
// that doubles up to MaxBackoff, with jitter so many appliances do not
// reconnect in lockstep.
func (s *Syslog) Run(ctx context.Context) error {
	s.defaults()
	defer s.Close()
	for {
		n, err := s.ExportOnce()
		s.Store.NoteSinkError(s.Sink, err)
		if ctx.Err() != nil {
			if err == nil && n > 0 {
				continue // drain what was stored before the stop
			}
			return err
		}
		wait := s.Poll
		if err != nil {
			wait = s.backoff()
		}
		if err != nil || n == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
}

// backoff is MinBackoff·2^(failures-1), capped, minus up to 25 % jitter.
func (s *Syslog) backoff() time.Duration {
	return backoffFor(s.failures, s.MinBackoff, s.MaxBackoff)
}

// ExportOnce sends the next batch of events after the sink's cursor, then
// the next batch of alerts after its alert cursor, connecting first if
// needed, and reports how many records it delivered. On error the
// connection is dropped and the failed stream's cursor is left where it was.
func (s *Syslog) ExportOnce() (int, error) {
	s.defaults()
	n, err := s.exportEvents()
	if err != nil || s.NoAlerts {
		return n, err
	}
	m, err := s.exportAlerts()
	return n + m, err
}

// exportAlerts sends the next batch of alerts as messages with MSGID
// "alert", in alert order, at least once like events.
func (s *Syslog) exportAlerts() (int, error) {
	alerts, err := s.Store.ReadAlertsAfter(s.Sink, s.Batch)
	if err != nil || len(alerts) == 0 {
		return 0, err
	}
	f := RFC5424{Facility: s.Facility, Host: s.Hostname, App: s.AppName}
	format := f.FormatAlert
	if s.Format == "cef" {
		format = f.FormatAlertCEF
	}
	buf := make([]byte, 0, len(alerts)*512)
	for i := range alerts {
		msg := format(&alerts[i])
		buf = strconv.AppendInt(buf, int64(len(msg)), 10)
		buf = append(buf, ' ')
		buf = append(buf, msg...)
	}
	if err := s.send(buf); err != nil {
		s.failures++
		return 0, fmt.Errorf("syslog export of alerts to %s: %w", s.Addr, err)
	}
	s.failures = 0
	if err := s.Store.AdvanceAlerts(s.Sink, alerts[len(alerts)-1].Seq); err != nil {
		return 0, err
	}
	return len(alerts), nil
}

func (s *Syslog) exportEvents() (int, error) {
	events, err := s.Store.ReadAfter(s.Sink, s.Batch)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	buf, err := s.frames(events)
	if err != nil {
		return 0, err
	}
	if err := s.send(buf); err != nil {
		s.failures++
		return 0, fmt.Errorf("syslog export to %s: %w", s.Addr, err)
	}
	s.failures = 0
	if err := s.Store.Advance(s.Sink, events[len(events)-1].Seq); err != nil {
		return 0, err
	}
	return len(events), nil
}

// frames formats events as octet-counted frames.
func (s *Syslog) frames(events []Event) ([]byte, error) {
	f := RFC5424{Facility: s.Facility, Host: s.Hostname, App: s.AppName}
	format := f.Format
	switch s.Format {
	case "rfc5424":
	case "cef":
		format = f.FormatCEF
	default:
		return nil, fmt.Errorf("syslog export: unknown format %q", s.Format)
	}
	buf := make([]byte, 0, len(events)*512)
	for i := range events {
		msg := format(&events[i])
		buf = strconv.AppendInt(buf, int64(len(msg)), 10)
		buf = append(buf, ' ')
		buf = append(buf, msg...)
	}
	return buf, nil
}

// send writes buf on a live connection, dialing one if needed.
func (s *Syslog) send(buf []byte) error {
	if s.conn != nil && !connAlive(s.conn) {
		s.Close()
	}
	if s.conn == nil {
		c, err := s.dial()
		if err != nil {
			return err
		}
		s.conn = c
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.Timeout))
	if _, err := s.conn.Write(buf); err != nil {
		// A partial frame may have gone out; the receiver discards it with
		// the connection, and the whole batch goes again on the next one.
		s.Close()
		return err
	}
	return nil
}

func (s *Syslog) dial() (net.Conn, error) {
	d := &net.Dialer{Timeout: s.Timeout, KeepAlive: 30 * time.Second}
	switch s.Network {
	case "tcp":
		return d.Dial("tcp", s.Addr)
	case "tls":
		cfg := &tls.Config{}
		if s.TLS != nil {
			cfg = s.TLS.Clone()
		}
		if cfg.InsecureSkipVerify {
			return nil, errors.New("TLS certificate verification cannot be disabled")
		}
		cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
		return (&tls.Dialer{NetDialer: d, Config: cfg}).Dial("tcp", s.Addr)
	}
	return nil, fmt.Errorf("unknown network %q (want tcp or tls)", s.Network)
}

// connAlive reports whether the receiver has neither closed nor reset c. A
// syslog receiver never sends, so any read result other than a timeout
// (EOF, reset, TLS close_notify, stray data) means the connection is
// unusable.
func connAlive(c net.Conn) bool {
	// A deadline already past would fail before reading, hence a short one.
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var one [1]byte
	_, err := c.Read(one[:])
	_ = c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close drops the connection, if any; the next export dials again.
func (s *Syslog) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
