package appliance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/proxy"
	"github.com/portcullis-gw/portcullis/proxy/classify"
)

// ClientsConfig is how clients are told apart (browser or native app) and
// what happens to native apps that pin their certificates.
type ClientsConfig struct {
	// File replaces the embedded fingerprint data (JA4 → client family,
	// outdated versions; see proxy/classify/clients.yaml for the format).
	// Reloaded on SIGHUP; a file with errors is refused and the running
	// data stays. Empty: the embedded data.
	File        string            `mapstructure:"file"`
	PassThrough PassThroughConfig `mapstructure:"pass_through"`
}

// PassThroughConfig is the list of destinations learnt from native apps
// that refuse the appliance's certificate (certificate pinning): they are
// spliced for that client family so the app keeps working.
type PassThroughConfig struct {
	Learn bool          `mapstructure:"learn"`
	TTL   time.Duration `mapstructure:"ttl"`
	Max   int           `mapstructure:"max"`
}

func (c *ClientsConfig) validate(bad func(key, format string, a ...any)) {
	if c.PassThrough.TTL <= 0 || c.PassThrough.Max <= 0 {
		bad("clients.pass_through", "ttl and max must be positive")
	}
}

// clientKinds holds the classifier in force, swapped on reload.
type clientKinds struct {
	file string
	c    atomic.Pointer[classify.Classifier]
}

func newClientKinds(file string) (*clientKinds, error) {
	k := &clientKinds{file: file}
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *clientKinds) reload() error {
	if k.file == "" {
		k.c.Store(classify.Default())
		return nil
	}
	c, err := classify.LoadFile(k.file)
	if err != nil {
		return fmt.Errorf("clients.file: %w", err)
	}
	k.c.Store(c)
	return nil
}

func (k *clientKinds) proxyConfig(c *ClientsConfig) *proxy.ClientConfig {
	return &proxy.ClientConfig{Classifier: k.c.Load, PassThroughTTL: c.PassThrough.TTL, PassThroughMax: c.PassThrough.Max, PassThroughOff: !c.PassThrough.Learn}
}

// passThroughHandlers show the learnt pass-through list on the management
// address (GET /passthrough) and let an admin remove an entry
// (DELETE /passthrough?host=…[&family=…]).
func (a *Appliance) passThroughHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /passthrough", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.proxy.PassThrough())
	})
	mux.HandleFunc("DELETE /passthrough", func(w http.ResponseWriter, r *http.Request) {
		host := r.URL.Query().Get("host")
		if host == "" {
			http.Error(w, "name the host: DELETE /passthrough?host=app.example.com[&family=curl]", http.StatusBadRequest)
			return
		}
		if !a.proxy.RemovePassThrough(host, r.URL.Query().Get("family")) {
			http.Error(w, "no such pass-through entry", http.StatusNotFound)
			return
		}
		a.log.Info("pass-through entry removed", "host", host, "family", r.URL.Query().Get("family"))
		w.WriteHeader(http.StatusNoContent)
	})
}
