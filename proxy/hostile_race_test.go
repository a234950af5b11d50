//go:build race

package proxy

// raceBuild: built with -race (the load test's budgets do not apply).
const raceBuild = true
