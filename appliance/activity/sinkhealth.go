package activity

import (
	"fmt"
	"sync"
	"time"
)

// SinkState is what an operator needs to know about one exporter: how far
// behind the store it is and whether its last attempt failed.
type SinkState struct {
	Name string `json:"name"`
	// Delivered is the seq of the last event the sink acknowledged; Behind
	// is how many stored events come after it.
	Delivered int64 `json:"delivered"`
	Behind    int64 `json:"behind"`
	// LastDelivery is when the cursor last moved (zero: not since start).
	LastDelivery time.Time `json:"last_delivery,omitzero"`
	// Failing: the most recent attempt failed, with LastError at ErrorAt;
	// Failures counts the failed attempts since start.
	Failing   bool      `json:"failing"`
	LastError string    `json:"last_error,omitempty"`
	ErrorAt   time.Time `json:"error_at,omitzero"`
	Failures  uint64    `json:"failures"`
}

// sinkHealth is the in-memory side of the sinks' state: what the cursor
// table cannot say (errors, when the cursor moved).
type sinkHealth struct {
	mu    sync.Mutex
	sinks map[string]*SinkState
}

func (h *sinkHealth) get(name string) *SinkState {
	if h.sinks == nil {
		h.sinks = map[string]*SinkState{}
	}
	st := h.sinks[name]
	if st == nil {
		st = &SinkState{Name: name}
		h.sinks[name] = st
	}
	return st
}

func (h *sinkHealth) delivered(name string, at time.Time) {
	h.mu.Lock()
	st := h.get(name)
	st.LastDelivery, st.Failing = at, false
	h.mu.Unlock()
}

// NoteSinkError records that sink name's last attempt failed with err; the
// next Advance clears the failing state (the error text is kept).
func (s *Store) NoteSinkError(name string, err error) {
	if err == nil {
		return
	}
	s.sinks.mu.Lock()
	st := s.sinks.get(name)
	st.Failing, st.LastError, st.ErrorAt = true, err.Error(), time.Now()
	st.Failures++
	s.sinks.mu.Unlock()
}

// SinkStates reports the named sinks: their cursors, how many events each
// has still to deliver, and their last errors.
func (s *Store) SinkStates(names ...string) ([]SinkState, error) {
	var last int64
	if err := s.rdb.QueryRow("SELECT coalesce(max(seq), 0) FROM events").Scan(&last); err != nil {
		return nil, fmt.Errorf("sink states: %w", err)
	}
	out := make([]SinkState, 0, len(names))
	for _, name := range names {
		cur, err := s.Cursor(name)
		if err != nil {
			return nil, err
		}
		s.sinks.mu.Lock()
		st := *s.sinks.get(name)
		s.sinks.mu.Unlock()
		st.Delivered, st.Behind = cur, max(last-cur, 0)
		out = append(out, st)
	}
	return out, nil
}
