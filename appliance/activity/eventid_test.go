package activity

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestNewEventIDIsV7(t *testing.T) {
	now := time.Now()
	seen := map[uuid.UUID]bool{}
	for range 100000 {
		id := newEventID(now)
		if id.Version() != 7 || id.Variant() != uuid.RFC4122 {
			t.Fatalf("%s: version %d variant %v", id, id.Version(), id.Variant())
		}
		if sec, nsec := id.Time().UnixTime(); time.Unix(sec, nsec).UnixMilli() != now.UnixMilli() {
			t.Fatalf("%s: time %v, want %v", id, time.Unix(sec, nsec), now)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}
