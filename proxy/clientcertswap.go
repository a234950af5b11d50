package proxy

import (
	"crypto/tls"
	"errors"
	"sync"

	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// clientCASet is one client-CA set: the CAs, the generation that keys its
// verdicts, and the listeners' TLS configurations advertising it (made on
// the first handshake after a swap).
type clientCASet struct {
	cas *certcheck.ClientCAs
	pol certcheck.ClientPolicy
	gen uint64

	mu   sync.Mutex
	tlsc map[*tls.Config]*tls.Config // listener's base config → its copy naming these CAs
}

// configFor is GetConfigForClient of a listener asking for certificates:
// nil (the base config) while the set it was built with is in force, else
// a copy of base that advertises the current CAs.
func (cc *clientCerts) configFor(base *tls.Config, first *clientCASet) *tls.Config {
	set := cc.set.Load()
	if set == first {
		return nil
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	if c := set.tlsc[base]; c != nil {
		return c
	}
	c := base.Clone()
	c.GetConfigForClient = nil
	set.advertise(c)
	if set.tlsc == nil {
		set.tlsc = map[*tls.Config]*tls.Config{}
	}
	set.tlsc[base] = c
	return c
}

// ErrNoClientCertificates: the server was built without Config.ClientCerts,
// so it has no device-certificate state to swap a set into.
var ErrNoClientCertificates = errors.New("client certificates are off in this server (built without ClientCerts)")

// SetClientCAs replaces the client-CA set (CAs and CRL files) while the
// server runs: handshakes from now on advertise the new CAs, connections
// from now on are validated against them, and no verdict reached under
// the old set is reused. Connections already validated keep their verdict.
// A nil set stops the listeners asking for certificates; the first set
// given to a server built with none makes them ask.
func (s *Server) SetClientCAs(cas *certcheck.ClientCAs) error {
	if s.clientCerts == nil {
		return ErrNoClientCertificates
	}
	return s.SetClientCerts(cas, s.clientCerts.set.Load().pol)
}

// SetClientCerts is SetClientCAs with the revocation policy replaced too
// (devices.check_crl, require_crl).
func (s *Server) SetClientCerts(cas *certcheck.ClientCAs, pol certcheck.ClientPolicy) error {
	if s.clientCerts == nil {
		return ErrNoClientCertificates
	}
	s.clientCerts.set.Store(&clientCASet{cas: cas, pol: pol, gen: caGeneration.Add(1)})
	return nil
}

// ClientCertificates reports whether the server's listeners ask for
// client certificates (a set with CAs is in force).
func (s *Server) ClientCertificates() bool {
	return s.clientCerts != nil && s.clientCerts.set.Load().cas != nil
}

// ClientCertsSwappable reports whether SetClientCerts works: the server
// was built with Config.ClientCerts, with CAs or none yet.
func (s *Server) ClientCertsSwappable() bool { return s.clientCerts != nil }
