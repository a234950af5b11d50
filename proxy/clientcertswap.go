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
	c.ClientCAs = set.cas.AdvertisePool()
	if set.tlsc == nil {
		set.tlsc = map[*tls.Config]*tls.Config{}
	}
	set.tlsc[base] = c
	return c
}

// ErrNoClientCertificates: the server was started without client CAs, so
// its listeners do not ask for certificates; a set cannot be swapped in
// (the appliance restarts for the first CA).
var ErrNoClientCertificates = errors.New("client certificates are off in this server (no client CAs at start): restart to turn them on")

// SetClientCAs replaces the client-CA set (CAs and CRL files) while the
// server runs: handshakes from now on advertise the new CAs, connections
// from now on are validated against them, and no verdict reached under
// the old set is reused. Connections already validated keep their verdict.
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
	if cas == nil {
		return errNoClientCAs
	}
	s.clientCerts.set.Store(&clientCASet{cas: cas, pol: pol, gen: caGeneration.Add(1)})
	return nil
}

// ClientCertificates reports whether the server's listeners ask for
// client certificates.
func (s *Server) ClientCertificates() bool { return s.clientCerts != nil }
