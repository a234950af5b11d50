//go:build race

package rewrite

// raceBuild: built with -race, where sync.Pool drops items at random, so
// the allocation budgets of pooled paths do not apply.
const raceBuild = true
