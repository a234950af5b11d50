package certcheck

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// Mode is what happens when no revocation answer can be had for a
// certificate. The zero value is Soft.
type Mode uint8

const (
	// Soft allows the connection, marks the Outcome SoftFailed and counts it.
	Soft Mode = iota
	// Hard refuses the connection with ErrNoRevocationInfo.
	Hard
	// Off checks no revocation at all; key-size rules still apply.
	Off
)

func (m Mode) String() string {
	switch m {
	case Soft:
		return "soft"
	case Hard:
		return "hard"
	case Off:
		return "off"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Config is the checker's configuration. Zero fields take the defaults
// below; negative ones are errors.
type Config struct {
	Mode Mode
	// Timeout bounds one OCSP or CRL fetch, connect to last byte.
	Timeout time.Duration
	// CacheEntries bounds the per-certificate answer cache (LRU).
	CacheEntries int
	// MaxCRLSize is the largest CRL downloaded; a larger one is no answer.
	MaxCRLSize int64
	// CRLCacheBytes bounds the memory held by parsed CRLs (LRU, weighed by
	// their size); a single CRL larger than this is used but not kept.
	CRLCacheBytes int64
	// HTTPClient fetches OCSP answers and CRLs. The default has the
	// timeouts above, ignores proxy environment variables, sends no
	// Accept-Encoding and follows at most 3 redirects to http(s) URLs.
	HTTPClient *http.Client
	// MinRSABits and MinECBits are the smallest keys accepted anywhere in
	// a chain (RSA modulus bits; ECDSA curve size). Ed25519 is accepted.
	MinRSABits int
	MinECBits  int
}

// Defaults for zero Config fields.
const (
	DefaultTimeout       = 3 * time.Second
	DefaultCacheEntries  = 8192
	DefaultMaxCRLSize    = 20 << 20
	DefaultCRLCacheBytes = 64 << 20
	DefaultMinRSABits    = 2048
	DefaultMinECBits     = 256
)

// Fixed bounds. They are not settings because no sane deployment needs
// them larger, and each one is what keeps a hostile peer or responder from
// costing memory or time.
const (
	// MaxChainLen is the longest verified chain VerifyChain accepts.
	MaxChainLen = 10
	// MaxClientCerts is the most certificates a client may present.
	MaxClientCerts = 8
	// maxClientChains is how many of x509's candidate chains ValidClient
	// checks revocation for before giving up.
	maxClientChains = 4
	// maxOCSPResponse bounds an OCSP answer; real ones are a few KiB.
	maxOCSPResponse = 64 << 10
	// maxURLsPerCert is how many OCSP URLs and, separately, how many CRL
	// distribution points of one certificate are tried.
	maxURLsPerCert = 2
	// maxCacheTTL caps how long an answer is kept, whatever its NextUpdate.
	maxCacheTTL = 24 * time.Hour
	// noNextUpdateTTL is how long an OCSP answer or CRL without NextUpdate
	// counts as fresh after its thisUpdate.
	noNextUpdateTTL = time.Hour
	// failureTTL is how long "no answer" is remembered, so an unreachable
	// responder costs one timeout per half minute, not one per handshake.
	failureTTL = 30 * time.Second
	// clockSkew is tolerated on thisUpdate and nextUpdate.
	clockSkew = 5 * time.Minute
	// shortLivedMax is the CA/Browser Forum's short-lived certificate
	// bound: such a leaf may name no revocation service at all.
	shortLivedMax = 7 * 24 * time.Hour
	maxRedirects  = 3
)

// Validate reports settings that cannot be honoured.
func (c Config) Validate() error {
	switch {
	case c.Mode > Off:
		return fmt.Errorf("%w: unknown mode %d", ErrConfig, c.Mode)
	case c.Timeout < 0:
		return fmt.Errorf("%w: negative timeout", ErrConfig)
	case c.CacheEntries < 0:
		return fmt.Errorf("%w: negative cache entries", ErrConfig)
	case c.MaxCRLSize < 0:
		return fmt.Errorf("%w: negative max CRL size", ErrConfig)
	case c.CRLCacheBytes < 0:
		return fmt.Errorf("%w: negative CRL cache size", ErrConfig)
	case c.MinRSABits < 0 || c.MinECBits < 0:
		return fmt.Errorf("%w: negative minimum key size", ErrConfig)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.CacheEntries == 0 {
		c.CacheEntries = DefaultCacheEntries
	}
	if c.MaxCRLSize == 0 {
		c.MaxCRLSize = DefaultMaxCRLSize
	}
	if c.CRLCacheBytes == 0 {
		c.CRLCacheBytes = DefaultCRLCacheBytes
	}
	if c.MinRSABits == 0 {
		c.MinRSABits = DefaultMinRSABits
	}
	if c.MinECBits == 0 {
		c.MinECBits = DefaultMinECBits
	}
	if c.HTTPClient == nil {
		c.HTTPClient = defaultHTTPClient(c.Timeout)
	}
	return c
}

func defaultHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil, // revocation fetches go direct, whatever the environment says
			DialContext:            (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:    timeout,
			ResponseHeaderTimeout:  timeout,
			MaxResponseHeaderBytes: 16 << 10,
			DisableCompression:     true,
			MaxIdleConns:           16,
			MaxIdleConnsPerHost:    2,
			IdleConnTimeout:        90 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return errURL
			}
			return nil
		},
	}
}
