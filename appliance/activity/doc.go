// Package activity is the appliance's activity log: the event model, the
// durable store every access and session decision is written to, the per-sink
// cursors exporters deliver from, the search API the console and the CLI use,
// and retention.
//
// The store is SQLite (modernc.org/sqlite, no cgo) in WAL mode. Emit puts an
// event on a bounded in-memory queue and returns at once; one writer
// goroutine commits the queue in groups, one fsynced transaction per group, so
// the request path never waits for the disk unless it asks to: EmitDurable
// and WaitDurable let an audit-strict proxy hold a response until its event
// is on disk, one fsync serving every waiter of a group. What happens when
// the queue is full is the operator's choice (see Durability): refuse new
// sessions, or drop and count.
//
// Policies marked alert: true raise alerts (RaiseAlert) under a per-policy
// daily limit; alerts have their own table, search and exporter cursors.
//
// The package imports nothing else from this module so that the proxy, the
// CLI and tests can use it without pulling in the appliance.
package activity
