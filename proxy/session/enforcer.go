package session

import (
	"errors"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// Defaults for Config fields left zero.
const (
	// DefaultMemorySpool is how much of a held body stays in memory before
	// it goes to a file in SpoolDir.
	DefaultMemorySpool = 256 << 10
	// DefaultMaxFieldBody bounds the body read for body fields (JSON, form,
	// multipart text fields). Over it, the request is decided as "could not
	// be inspected" with what the first bytes gave, and the body is still
	// forwarded unchanged if that decision lets it through.
	DefaultMaxFieldBody = 1 << 20
	// DefaultInspectionTimeout bounds inspection after the body is complete
	// (text extraction, detectors over extracted text).
	DefaultInspectionTimeout = 30 * time.Second
	// DefaultScanTimeout bounds waiting for the malware scanner once the
	// file's last byte was handed to it.
	DefaultScanTimeout = 30 * time.Second
	// DefaultMaxParts bounds the parts of one multipart body.
	DefaultMaxParts = 1000
	// DefaultMaxPartHeader bounds the header block of one multipart part.
	DefaultMaxPartHeader = 16 << 10
)

// Config is the enforcement mechanism's configuration.
type Config struct {
	// Scanner scans files for policies with malware: true; nil means
	// every scan fails (and the engine's default applies).
	Scanner Scanner
	// Protector carries out protect; nil means every file is unsupported.
	Protector Protector
	// SpoolDir holds spooled bodies past MemorySpool; default os.TempDir().
	// Files are created 0600 and unlinked at once, so nothing is left
	// behind even by a crash.
	SpoolDir          string
	MemorySpool       int64
	MaxFieldBody      int64
	InspectionTimeout time.Duration
	ScanTimeout       time.Duration
	MaxParts          int
	MaxPartHeader     int
	Log               *slog.Logger
}

func (c *Config) setDefaults() {
	if c.SpoolDir == "" {
		c.SpoolDir = os.TempDir()
	}
	if c.MemorySpool <= 0 {
		c.MemorySpool = DefaultMemorySpool
	}
	if c.MaxFieldBody <= 0 {
		c.MaxFieldBody = DefaultMaxFieldBody
	}
	if c.InspectionTimeout <= 0 {
		c.InspectionTimeout = DefaultInspectionTimeout
	}
	if c.ScanTimeout <= 0 {
		c.ScanTimeout = DefaultScanTimeout
	}
	if c.MaxParts <= 0 {
		c.MaxParts = DefaultMaxParts
	}
	if c.MaxPartHeader <= 0 {
		c.MaxPartHeader = DefaultMaxPartHeader
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Stats count every enforcement outcome. Every field only grows.
type Stats struct {
	Decided      atomic.Uint64 // final decisions made
	Inspected    atomic.Uint64 // bodies or fields inspected to a result
	Held         atomic.Uint64 // bodies held back until decided
	Streamed     atomic.Uint64 // bodies inspected while they streamed
	TooLarge     atomic.Uint64 // files over the inspection size limit
	Failed       atomic.Uint64 // inspections that failed (malformed, bombs, archives)
	Timeouts     atomic.Uint64 // inspections that timed out
	ScanErrors   atomic.Uint64 // scans that failed or timed out
	ScanCached   atomic.Uint64 // held files a cached verdict answered: not scanned
	Infected     atomic.Uint64 // files a scanner reported
	FailOpen     atomic.Uint64 // requests let through although a policy could not be evaluated
	FailClosed   atomic.Uint64 // requests blocked because a policy could not be evaluated
	Blocked      atomic.Uint64 // requests and downloads blocked
	Replaced     atomic.Uint64 // downloads replaced by a .blocked.txt file
	Protected    atomic.Uint64 // downloads protected
	Unsupported  atomic.Uint64 // protect asked for on a file that cannot be protected
	ClientErrors atomic.Uint64 // malformed request bodies answered with 400
}

// Enforcer is the session enforcement mechanism shared by every request.
type Enforcer struct {
	cfg   Config
	Stats Stats
}

// New returns an Enforcer. The spool directory must exist.
func New(cfg Config) (*Enforcer, error) {
	cfg.setDefaults()
	fi, err := os.Stat(cfg.SpoolDir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, errors.New("session spool dir is not a directory")
	}
	return &Enforcer{cfg: cfg}, nil
}
