package appliance

import (
	"errors"
	"time"
)

// LimitsConfig is the `limits:` section: what one hostile client (or a
// broken origin) may cost the appliance. Every limit is on; there is no
// value meaning "unlimited".
type LimitsConfig struct {
	MaxHeaderBytes       int           `mapstructure:"max_header_bytes"`
	MaxHeaderCount       int           `mapstructure:"max_header_count"`
	MaxConnsPerClient    int           `mapstructure:"max_conns_per_client"`
	ReadHeaderTimeout    time.Duration `mapstructure:"read_header_timeout"`
	BodyReadTimeout      time.Duration `mapstructure:"body_read_timeout"`
	UpstreamIdleTimeout  time.Duration `mapstructure:"upstream_idle_timeout"`
	MaxConcurrentStreams uint32        `mapstructure:"max_concurrent_streams"`
	MaxStreamResets      int           `mapstructure:"max_stream_resets"`
}

func (c LimitsConfig) validate() error {
	var errs []error
	bad := func(key, msg string) { errs = append(errs, errors.New("limits."+key+": "+msg)) }
	if c.MaxHeaderBytes < 4<<10 || c.MaxHeaderBytes > 1<<20 {
		bad("max_header_bytes", "must be between 4096 and 1048576")
	}
	if c.MaxHeaderCount < 16 || c.MaxHeaderCount > 10000 {
		bad("max_header_count", "must be between 16 and 10000")
	}
	if c.MaxConnsPerClient < 1 {
		bad("max_conns_per_client", "must be positive")
	}
	if c.ReadHeaderTimeout <= 0 || c.BodyReadTimeout <= 0 || c.UpstreamIdleTimeout <= 0 {
		bad("timeouts", "read_header_timeout, body_read_timeout and upstream_idle_timeout must be positive")
	}
	if c.MaxConcurrentStreams < 1 || c.MaxConcurrentStreams > 1000 {
		bad("max_concurrent_streams", "must be between 1 and 1000")
	}
	if c.MaxStreamResets < 1 {
		bad("max_stream_resets", "must be positive")
	}
	return errors.Join(errs...)
}
