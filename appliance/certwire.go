package appliance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-gw/portcullis/proxy"
	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// newCertChecker builds the one certificate checker the appliance has: it
// checks key sizes and revocation of every upstream chain (and of client
// certificates where those are validated).
func newCertChecker(u *UpstreamConfig) (*certcheck.Checker, error) {
	mode := certcheck.Soft
	switch u.Revocation {
	case "hard":
		mode = certcheck.Hard
	case "off":
		mode = certcheck.Off
	}
	c, err := certcheck.New(certcheck.Config{Mode: mode, MinRSABits: u.MinRSABits, MinECBits: u.MinECBits})
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	return c, nil
}

// upstreamVerify is the proxy's hook for every upstream handshake.
func upstreamVerify(c *certcheck.Checker) func(tls.ConnectionState) error {
	return c.VerifyConnection(context.Background())
}

// upstreamRoots is the pool origins are verified against: the system roots
// plus extra_roots, or extra_roots alone when system_roots is off.
func upstreamRoots(u *UpstreamConfig) (*x509.CertPool, error) {
	if u.SystemRoots {
		return rootsWith("upstream.extra_roots", u.ExtraRoots)
	}
	if len(u.ExtraRoots) == 0 {
		return nil, fmt.Errorf("upstream.system_roots: off needs the roots to trust in upstream.extra_roots")
	}
	return rootsFrom("upstream.extra_roots", x509.NewCertPool(), u.ExtraRoots)
}

// certCheckCollector exports the checker's counters at scrape time; every
// soft fail (a chain allowed without a revocation answer) is one of them.
type certCheckCollector struct {
	c      *certcheck.Checker
	checks *prometheus.Desc
	// devices are the proxy's client-certificate verdicts (devicewire.go).
	devices *proxy.DeviceStats
}

var _ prometheus.Collector = (*certCheckCollector)(nil)

func newCertCheckCollector(c *certcheck.Checker, devices *proxy.DeviceStats) *certCheckCollector {
	return &certCheckCollector{c: c, devices: devices, checks: prometheus.NewDesc("portcullis_certcheck_total",
		"Certificate checks (upstream revocation and key sizes, client certificates) by outcome.", []string{"outcome"}, nil)}
}

func (c *certCheckCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.checks; ch <- deviceDesc }

func (c *certCheckCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.c.Stats()
	for outcome, v := range map[string]uint64{
		"checked": s.Checks, "cache_hit": s.CacheHits, "soft_fail": s.SoftFails, "hard_refused": s.HardRefusals,
		"revoked": s.Revoked, "weak_key": s.KeyRejections, "fetch": s.Fetches, "fetch_error": s.FetchErrors,
		"staple_rejected": s.StaplesRejected, "ocsp_rejected": s.OCSPRejected, "crl_bad_signature": s.BadCRLSignatures,
		"crl_rejected": s.CRLRejected, "client_checked": s.ClientChecks, "client_rejected": s.ClientRejected,
		"client_soft_fail": s.ClientSoftFails, "client_chain_rejected": s.ClientChainsRejected,
	} {
		ch <- prometheus.MustNewConstMetric(c.checks, prometheus.CounterValue, float64(v), outcome)
	}
	collectDevices(ch, c.devices)
}
