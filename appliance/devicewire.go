package appliance

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy"
	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// DevicesConfig is device identity by client certificate: both TLS
// listeners ask for (never require) a certificate from these CAs, and one
// that is valid gives the connection the valid_client_certificate device
// tag that policies filter on.
type DevicesConfig struct {
	// ClientCAs are PEM files of root and intermediate CAs. Empty: no
	// certificate is asked for (browsers show no prompt).
	ClientCAs []string `mapstructure:"client_cas"`
	// CRLFiles are CRLs (DER or PEM) of those CAs, checked before a
	// certificate's own distribution points.
	CRLFiles []string `mapstructure:"crl_files"`
	// CheckCRL checks revocation (CRL files, then the certificate's CRL
	// distribution points over HTTP, cached); RequireCRL makes "no CRL
	// answer" (no CDP, unreachable, bad signature) invalid.
	CheckCRL   bool `mapstructure:"check_crl"`
	RequireCRL bool `mapstructure:"require_crl"`
	// UserFrom names the user a valid certificate identifies when nothing
	// else does (no SSO session): none, subject_cn, san_email, san_dns.
	UserFrom string `mapstructure:"user_from"`
}

var deviceUserFrom = map[string]func(*x509.Certificate) string{
	"none":       nil,
	"subject_cn": func(c *x509.Certificate) string { return c.Subject.CommonName },
	"san_email":  func(c *x509.Certificate) string { return first(c.EmailAddresses) },
	"san_dns":    func(c *x509.Certificate) string { return first(c.DNSNames) },
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func (d *DevicesConfig) validate(bad func(key, format string, a ...any)) {
	if _, ok := deviceUserFrom[d.UserFrom]; !ok {
		bad("devices.user_from", "%q is not one of none, subject_cn, san_email, san_dns", d.UserFrom)
	}
	// user_from may come before any CA: the console uploads them.
	if len(d.ClientCAs) == 0 && len(d.CRLFiles) != 0 {
		bad("devices", "crl_files need client_cas")
	}
	if d.RequireCRL && !d.CheckCRL {
		bad("devices.require_crl", "needs check_crl: true")
	}
}

// deviceCerts loads the client CAs and CRL files; nil when none are
// configured. Every problem names the file.
func deviceCerts(d *DevicesConfig, chk *certcheck.Checker) (*proxy.ClientCertConfig, error) {
	if len(d.ClientCAs) == 0 {
		return nil, nil
	}
	read := func(key string, paths []string) ([][]byte, error) {
		out := make([][]byte, 0, len(paths))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("devices.%s: %w", key, err)
			}
			out = append(out, b)
		}
		return out, nil
	}
	pems, err := read("client_cas", d.ClientCAs)
	if err != nil {
		return nil, err
	}
	crls, err := read("crl_files", d.CRLFiles)
	if err != nil {
		return nil, err
	}
	cas, err := certcheck.LoadClientCAs(pems, crls)
	if err != nil {
		// The error numbers bundles and CRL files in configuration order.
		return nil, fmt.Errorf("devices (client_cas %v, crl_files %v): %w", d.ClientCAs, d.CRLFiles, err)
	}
	return &proxy.ClientCertConfig{
		Checker:  chk,
		CAs:      cas,
		Policy:   certcheck.ClientPolicy{CheckCRL: d.CheckCRL, RequireCRL: d.RequireCRL},
		UserFrom: deviceUserFrom[d.UserFrom],
	}, nil
}

// setDevices says whether the listeners ask for client certificates (a
// device CA is in force) and whether a valid one names its user.
func (p *policyEnforcer) setDevices(asking, userFrom bool) {
	p.devices.Store(asking)
	p.certUsers.Store(asking && userFrom)
}

// deviceTagsOf are the device tags the connection's client certificate
// gives it (nil before the handshake and without client CAs).
func deviceTagsOf(ci *proxy.ConnInfo) []string { return ci.DeviceTags() }

// deviceUserOf is the user a valid client certificate names (devices.
// user_from), for clients no SSO session identifies.
func deviceUserOf(ci *proxy.ConnInfo) string {
	if d := ci.Device(); d != nil && d.Valid {
		return d.User
	}
	return ""
}

// deviceMayAllow reports that a connection the access policies block
// without a device tag would be allowed with a valid client certificate.
// The ClientHello does not carry the certificate, so such a connection is
// intercepted and decided per request once the handshake has shown it
// (deviceRecheck); a block that does not depend on the device stays a
// TLS alert before any handshake.
func (p *policyEnforcer) deviceMayAllow(e *policy.Engine, ci *proxy.ConnInfo, subj policy.Subject, host string) bool {
	if !p.devices.Load() || !ci.TLS || slices.Contains(subj.DeviceTags, policy.DeviceValidClientCertificate) {
		return false
	}
	subj.DeviceTags = append(slices.Clip(subj.DeviceTags), policy.DeviceValidClientCertificate)
	return e.Access(&policy.AccessRequest{Subject: subj, Host: host}).Action != policy.ActionBlock
}

// certUserMayAllow reports that a block resting on who the user is may not
// hold for this client: before the handshake its certificate, which names
// the user (devices.user_from), is not known. Such a connection is
// intercepted and each request decided with the certificate's user
// (deviceRecheck); one the policy still blocks gets 403. A user already
// known (identity.source_users) was decided as that user.
func (p *policyEnforcer) certUserMayAllow(ci *proxy.ConnInfo, subj policy.Subject, restsOnIdentity bool) bool {
	return p.certUsers.Load() && restsOnIdentity && ci.TLS && subj.User == ""
}

// deviceRecheck is the access decision of a request on an intercepted TLS
// connection (transparent or explicit) once the client certificate is
// known: the connection-level decision could not see it.
func (p *policyEnforcer) deviceRecheck(e *policy.Engine, ci *proxy.ConnInfo, r *http.Request) proxy.RequestDecision {
	subj := requestSubject(ci, r)
	a := e.Access(&policy.AccessRequest{Subject: subj, Host: ci.ServerName()})
	if a.Action != policy.ActionBlock {
		return proxy.RequestDecision{}
	}
	if a.Alert {
		p.alerts.alertsOf(a.Matches, a.App, subj, ci.ServerName(), "access")
	}
	msg := a.Message
	if msg == "" {
		msg = "Access to this app is not allowed by your organisation's policy."
	}
	reason := "policy " + winnerID(a.Matches, a.Winner)
	if d := ci.Device(); !d.Valid {
		reason += " (client certificate: " + d.Failure.String() + ")"
	}
	return proxy.RequestDecision{Block: true, Reason: reason, Message: msg}
}

// deviceOutcomes names the client-certificate verdicts in
// portcullis_device_certificate_total.
var deviceOutcomes = [...]string{
	certcheck.ClientNoCAs:         "no_cas",
	certcheck.ClientNoCertificate: "none",
	certcheck.ClientTooManyCerts:  "too_many_certs",
	certcheck.ClientMalformed:     "malformed",
	certcheck.ClientWeakKey:       "weak_key",
	certcheck.ClientUntrusted:     "untrusted",
	certcheck.ClientExpired:       "expired",
	certcheck.ClientWrongUsage:    "wrong_usage",
	certcheck.ClientRevoked:       "revoked",
	certcheck.ClientNoCRL:         "no_crl",
}

var deviceDesc = prometheus.NewDesc("portcullis_device_certificate_total",
	"Client-certificate verdicts, one per connection that completed a handshake while client CAs are configured: valid, a failure, or answered from the verdict cache.",
	[]string{"outcome"}, nil)

// collectDevices exports the proxy's verdict counters (nil: no client CAs).
func collectDevices(ch chan<- prometheus.Metric, s *proxy.DeviceStats) {
	if s == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(deviceDesc, prometheus.CounterValue, float64(s.Valid.Load()), "valid")
	ch <- prometheus.MustNewConstMetric(deviceDesc, prometheus.CounterValue, float64(s.CacheHits.Load()), "cache_hit")
	ch <- prometheus.MustNewConstMetric(deviceDesc, prometheus.CounterValue, float64(s.CacheSkipped.Load()), "not_cached")
	for f, n := range s.Failures() {
		if f < len(deviceOutcomes) && deviceOutcomes[f] != "" {
			ch <- prometheus.MustNewConstMetric(deviceDesc, prometheus.CounterValue, float64(n), deviceOutcomes[f])
		}
	}
}
