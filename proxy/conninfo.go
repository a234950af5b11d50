package proxy

import (
	"context"

	"github.com/portcullis-gw/portcullis/proxy/classify"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Mode is how a connection entered the appliance.
type Mode uint8

const (
	ModeTransparent Mode = iota // steered by the eBPF datapath
	ModeExplicit                // CONNECT or absolute-form request to the explicit listener
	ModeSuffix                  // app.example.com.<suffix> on the suffix reverse-proxy listener
)

func (m Mode) String() string {
	switch m {
	case ModeExplicit:
		return "explicit"
	case ModeSuffix:
		return "suffix"
	}
	return "transparent"
}

// ConnInfo is what the pipeline knows about one client connection. It is
// filled in as the connection progresses and read by decision hooks and the
// access log.
type ConnInfo struct {
	ID     uint64
	Mode   Mode
	Client netip.AddrPort
	// Dest is the original destination: the accepted socket's local address
	// in transparent mode, the resolved CONNECT target in explicit mode. The
	// upstream is always dialled here, never at an address taken from a Host
	// header.
	Dest netip.AddrPort
	// addrText is Client and Dest as text, made once for the access log.
	addrText connAddrText
	// ConnectHost is the host name of an explicit CONNECT request.
	ConnectHost string
	// Hello is the peeked ClientHello, nil for plain HTTP.
	Hello *ClientHello
	JA4   string
	TLS   bool
	Start time.Time

	upstream http.RoundTripper

	// ClientKind is the client's classification from its ClientHello
	// (browser or native, family, user-agent tags, why); requests refine it
	// with their User-Agent (ClientOf).
	ClientKind classify.Result
	// lastClient is the classification of the connection's last request:
	// the requests of a keep-alive connection nearly always repeat their
	// User-Agent (ClientOf).
	lastClient clientMemo
	// blockPage: a browser's connection to a host blocked at access, whose
	// every request gets the block page.
	blockPage *ConnDecision
	// userBlock: a block that rests on the user, deferred to the requests
	// until the login tells who the user is (useraccess.go).
	userBlock *ConnDecision
	srv       *Server

	// device is the client certificate presented in the handshake, validated
	// on first use (Device, clientcert.go); nil when none is asked for.
	device *deviceCheck
}

// ServerName is the name the client asked for: its SNI, else the CONNECT
// host, else "" (an IP-only connection).
func (ci *ConnInfo) ServerName() string {
	if ci.Hello != nil && ci.Hello.ServerName != "" {
		return ci.Hello.ServerName
	}
	return ci.ConnectHost
}

// certName is the name the client-side leaf is minted for and the upstream
// certificate is verified against.
func (ci *ConnInfo) certName() string {
	if n := ci.ServerName(); n != "" {
		return n
	}
	return ci.Dest.Addr().Unmap().String()
}

type connInfoKey struct{}

func withConnInfo(ctx context.Context, ci *ConnInfo) context.Context {
	return context.WithValue(ctx, connInfoKey{}, ci)
}

// ConnInfoFrom returns the connection a request arrived on.
func ConnInfoFrom(ctx context.Context) *ConnInfo {
	ci, _ := ctx.Value(connInfoKey{}).(*ConnInfo)
	return ci
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
