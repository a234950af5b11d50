package appliance

import (
	"errors"
	"time"

	"github.com/portcullis-gw/portcullis/proxy"
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

	WebSocketMaxFrameBytes         int64         `mapstructure:"websocket_max_frame_bytes"`
	WebSocketMaxMessageBytes       int64         `mapstructure:"websocket_max_message_bytes"`
	TunnelIdleTimeout              time.Duration `mapstructure:"tunnel_idle_timeout"`
	H2MaxUploadBufferPerStream     int64         `mapstructure:"h2_max_upload_buffer_per_stream"`
	H2MaxUploadBufferPerConnection int64         `mapstructure:"h2_max_upload_buffer_per_connection"`
}

func (c LimitsConfig) upgradeLimits() proxy.UpgradeLimits {
	return proxy.UpgradeLimits{
		WebSocketMaxFrame:              c.WebSocketMaxFrameBytes,
		WebSocketMaxMessage:            c.WebSocketMaxMessageBytes,
		TunnelIdleTimeout:              c.TunnelIdleTimeout,
		H2MaxUploadBufferPerStream:     int32(c.H2MaxUploadBufferPerStream),
		H2MaxUploadBufferPerConnection: int32(c.H2MaxUploadBufferPerConnection),
	}
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
	// A WebSocket control frame carries up to 125 bytes; a data frame
	// bound below 1 KiB would cut ordinary chat-sized messages.
	if c.WebSocketMaxFrameBytes < 1<<10 || c.WebSocketMaxFrameBytes > 1<<30 {
		bad("websocket_max_frame_bytes", "must be between 1024 and 1073741824")
	}
	if c.WebSocketMaxMessageBytes < c.WebSocketMaxFrameBytes || c.WebSocketMaxMessageBytes > 1<<30 {
		bad("websocket_max_message_bytes", "must be at least websocket_max_frame_bytes and at most 1073741824")
	}
	if c.TunnelIdleTimeout < time.Second || c.TunnelIdleTimeout > 24*time.Hour {
		bad("tunnel_idle_timeout", "must be between 1s and 24h")
	}
	// HTTP/2's initial window is 65535 bytes: less is not a window a
	// client can be granted; 16 MiB per connection is already more memory
	// per client connection than any other limit allows.
	if c.H2MaxUploadBufferPerStream < 65535 || c.H2MaxUploadBufferPerStream > 16<<20 {
		bad("h2_max_upload_buffer_per_stream", "must be between 65535 and 16777216")
	}
	if c.H2MaxUploadBufferPerConnection < c.H2MaxUploadBufferPerStream || c.H2MaxUploadBufferPerConnection > 16<<20 {
		bad("h2_max_upload_buffer_per_connection", "must be at least h2_max_upload_buffer_per_stream and at most 16777216")
	}
	return errors.Join(errs...)
}
