package activity

// The writer adds each group's rollup counts in Go as it binds the group's
// rows, then writes one upsert row per bucket touched: a group of a few
// hundred events from a handful of users and apps is a few dozen rows. The
// earlier form, six INSERT … SELECT … GROUP BY over the rows just written,
// read every row back six times and sorted it, about a fifth of the
// writer's CPU (BenchmarkIngest rollup_cpu_cost). The counts are the same:
// TestRollupsMatchEvents compares them with a GROUP BY over the events.

// countKey is a rollup_counts row's key.
type countKey struct {
	span, bucket int64
	mode, action string
}

// nameKey is a rollup_names row's key; dim is "user" or "app".
type nameKey struct {
	span, bucket int64
	dim, name    string
}

type nameCount struct{ n, blocked int64 }

// bucketOf is the start, in Unix seconds, of the span-second bucket holding
// ts (Unix nanoseconds, after 1970), as the SQL of rollupFill computes it.
func bucketOf(ts, span int64) int64 { return ts / (span * 1e9) * span }

// count adds ev (stamped ts) to the group's counts.
func (in *inserter) count(ev *Event, ts int64) {
	mode := string(ev.Mode)
	for _, span := range [...]int64{60, 3600} {
		in.counts[countKey{span, bucketOf(ts, span), mode, ev.Action}]++
	}
	var blocked int64
	if ev.Action == "block" {
		blocked = 1
	}
	for _, span := range [...]int64{3600, 86400} {
		b := bucketOf(ts, span)
		for _, d := range [...]struct{ dim, name string }{{"user", ev.User}, {"app", ev.App}} {
			if d.name == "" {
				continue
			}
			k := nameKey{span, b, d.dim, d.name}
			c := in.names[k]
			in.names[k] = nameCount{c.n + 1, c.blocked + blocked}
		}
	}
}

// writeCounts upserts the group's counts and empties them for the next
// group (whether or not the write succeeded: a failed group is rolled back
// and its events counted again when it is retried).
func (in *inserter) writeCounts(dc any) error {
	defer func() {
		clear(in.counts)
		clear(in.names)
		clear(in.upserts)
		in.upserts = in.upserts[:0]
	}()
	args := in.upserts[:0]
	for k, n := range in.counts {
		args = append(args, k.span, k.bucket, k.mode, k.action, n)
	}
	in.upserts = args
	if err := in.exec(dc, "rollup_counts", args, 5, sideRowsPerInsert); err != nil {
		return err
	}
	args = args[:0]
	for k, c := range in.names {
		args = append(args, k.span, k.dim, k.bucket, k.name, c.n, c.blocked)
	}
	in.upserts = args
	return in.exec(dc, "rollup_names", args, 6, sideRowsPerInsert)
}
