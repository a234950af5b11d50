package console

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// The live tail: the activity page asks every few seconds for the events
// of its search stored since the newest one it shows. Events are ordered
// by their request time, and a request's event can be stored a little
// after a later request's (a held download is recorded when it ends), so
// the tail looks back tailSlack before the newest time it has and the page
// drops the sequence numbers it already shows.
const (
	tailSlack = 30 * time.Second
	tailMax   = 200
)

type tailResult struct {
	Events []tailEvent `json:"events"`
	// Newest is the time to ask from next (RFC 3339, nanoseconds).
	Newest time.Time `json:"newest"`
	// More: more than tailMax events arrived; the page should reload.
	More bool `json:"more,omitempty"`
}

// tailEvent is an event with its time in Unix nanoseconds, which the page
// needs to open the event's drawer.
type tailEvent struct {
	EventJSON
	TS int64 `json:"ts,string"` // a string: a script's number loses nanoseconds
}

// apiTail is GET /api/v1/events/tail?<search>&newest=<RFC 3339>: the events
// of the search whose time is at or after newest - tailSlack, newest
// first, at most tailMax.
func (c *Console) apiTail(w http.ResponseWriter, r *http.Request, _ *session) {
	v := r.URL.Query()
	q, err := parseEventQuery(v, c.opt.Now())
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	newest := c.opt.Now().Add(-tailSlack)
	if s := v.Get("newest"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			apiError(w, http.StatusBadRequest, "newest: "+err.Error())
			return
		}
		newest = t
	}
	from := newest.Add(-tailSlack)
	if q.From.IsZero() || q.From.Before(from) {
		q.From = from
	}
	q.To, q.After, q.Limit = time.Time{}, "", tailMax+1
	p, err := c.opt.Activity.Search(q)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, activity.ErrBadQuery) {
			status = http.StatusBadRequest
		}
		apiError(w, status, err.Error())
		return
	}
	out := tailResult{Events: make([]tailEvent, 0, len(p.Events)), Newest: newest}
	if len(p.Events) > tailMax {
		out.More, p.Events = true, p.Events[:tailMax]
	}
	for i := range p.Events {
		e := &p.Events[i]
		if e.Time.After(out.Newest) {
			out.Newest = e.Time
		}
		out.Events = append(out.Events, tailEvent{EventJSON: eventJSON(e), TS: e.Time.UnixNano()})
	}
	writeJSON(w, http.StatusOK, out)
}

// eventRef is how pages name one event: its time (Unix nanoseconds) and
// sequence number, "ts:seq".
func parseEventRef(s string) (time.Time, int64, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return time.Time{}, 0, errors.New("event: ts:seq")
	}
	ts, err1 := strconv.ParseInt(a, 10, 64)
	seq, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, 0, errors.New("event: ts:seq, both numbers")
	}
	return time.Unix(0, ts), seq, nil
}
