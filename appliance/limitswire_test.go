package appliance

import (
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/proxy"
)

// The shipped limits are the proxy's secure defaults, and a limit that
// would be off or absurd is refused at load.
func TestLimitsConfig(t *testing.T) {
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	want := LimitsConfig{
		MaxHeaderBytes: proxy.DefaultMaxHeaderBytes, MaxHeaderCount: proxy.DefaultMaxHeaderCount,
		MaxConnsPerClient: proxy.DefaultMaxConnsPerClient, ReadHeaderTimeout: proxy.DefaultReadHeaderTimeout,
		BodyReadTimeout: proxy.DefaultBodyReadTimeout, UpstreamIdleTimeout: proxy.DefaultUpstreamIdleTimeout,
		MaxConcurrentStreams: proxy.DefaultMaxConcurrentStreams, MaxStreamResets: proxy.DefaultMaxStreamResets,
		WebSocketMaxFrameBytes: proxy.DefaultWebSocketMaxFrame, WebSocketMaxMessageBytes: proxy.DefaultWebSocketMaxMessage,
		TunnelIdleTimeout:          proxy.DefaultTunnelIdleTimeout,
		H2MaxUploadBufferPerStream: proxy.DefaultH2MaxUploadBufferPerStream, H2MaxUploadBufferPerConnection: proxy.DefaultH2MaxUploadBufferPerConnection,
	}
	if cfg.Limits != want {
		t.Fatalf("default limits %+v, want the proxy's defaults %+v", cfg.Limits, want)
	}
	if cfg.Limits.ReadHeaderTimeout != 10*time.Second || cfg.Limits.MaxHeaderBytes != 64<<10 {
		t.Fatalf("defaults moved: %+v", cfg.Limits)
	}
	for name, tc := range map[string]struct{ body, want string }{
		"zero header bytes":  {"limits:\n  max_header_bytes: 0\n", "limits.max_header_bytes"},
		"zero header count":  {"limits:\n  max_header_count: 0\n", "limits.max_header_count"},
		"no per-client cap":  {"limits:\n  max_conns_per_client: 0\n", "limits.max_conns_per_client"},
		"zero body timeout":  {"limits:\n  body_read_timeout: 0s\n", "body_read_timeout"},
		"too many streams":   {"limits:\n  max_concurrent_streams: 100000\n", "limits.max_concurrent_streams"},
		"unknown limits key": {"limits:\n  max_body: 1\n", "unknown key"},
		"tiny ws frame":      {"limits:\n  websocket_max_frame_bytes: 100\n", "limits.websocket_max_frame_bytes"},
		"zero ws frame":      {"limits:\n  websocket_max_frame_bytes: 0\n", "limits.websocket_max_frame_bytes"},
		"message < frame":    {"limits:\n  websocket_max_frame_bytes: 65536\n  websocket_max_message_bytes: 4096\n", "limits.websocket_max_message_bytes"},
		"ws frame as text":   {"limits:\n  websocket_max_frame_bytes: 1MiB\n", "websocket_max_frame_bytes"},
		"no tunnel idle":     {"limits:\n  tunnel_idle_timeout: 0s\n", "limits.tunnel_idle_timeout"},
		"h2 window tiny":     {"limits:\n  h2_max_upload_buffer_per_stream: 1000\n", "limits.h2_max_upload_buffer_per_stream"},
		"h2 window huge":     {"limits:\n  h2_max_upload_buffer_per_connection: 4294967296\n", "limits.h2_max_upload_buffer_per_connection"},
		"h2 conn < stream":   {"limits:\n  h2_max_upload_buffer_per_stream: 1048576\n  h2_max_upload_buffer_per_connection: 524288\n", "limits.h2_max_upload_buffer_per_connection"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}
