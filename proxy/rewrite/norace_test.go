//go:build !race

package rewrite

const raceBuild = false
