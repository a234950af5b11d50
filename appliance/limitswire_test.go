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
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}
