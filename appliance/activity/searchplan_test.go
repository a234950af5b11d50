package activity

import (
	"strings"
	"testing"
	"time"
)

// Every search walks one index in time order and stops after a page: the
// plan names the expected index and never sorts (a temp b-tree for ORDER BY
// would read every matching row first). Partial indexes are used only when
// the query states their condition, which this checks for each of them.
func TestSearchPlans(t *testing.T) {
	s, _ := openTest(t, Options{})
	emitN(t, s, 0, 50)
	waitWritten(t, s, 50)
	for _, tc := range []struct {
		q     Query
		index string
	}{
		{Query{}, "events_ts"},
		{Query{From: testEpoch, To: testEpoch.Add(time.Hour)}, "events_ts"},
		{Query{User: "user1@corp.example"}, "events_user"},
		{Query{User: "user1@corp.example", From: testEpoch}, "events_user"},
		{Query{App: "box"}, "events_app"},
		{Query{Action: "block"}, "events_action"},
		{Query{Action: "allow"}, "events_ts"}, // the dominant value: not in the index
		{Query{Activity: "download"}, "events_activity"},
		{Query{ClientApp: "mobile"}, "events_client_app"},
		{Query{ClientApp: "browser"}, "events_ts"},
		{Query{User: "user1@corp.example", App: "box", Action: "block"}, "events_user"},
		{Query{Action: "allow", App: "box"}, "events_app"},
		{Query{Policy: "p1"}, "k USING PRIMARY KEY (policy=?)"},
		{Query{DeviceTag: "os1"}, "k USING PRIMARY KEY (tag=?)"},
		{Query{Policy: "p1", Action: "block"}, "k USING PRIMARY KEY (policy=?)"},
		{Query{Text: "host4"}, "events_ts"},
	} {
		query, args, _, err := searchSQL(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.rdb.Query("EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		if !strings.Contains(plan[0], tc.index) || strings.Contains(got, "TEMP B-TREE") {
			t.Errorf("%+v: plan %q, want a walk of %s without a sort", tc.q, got, tc.index)
		}
	}
}
