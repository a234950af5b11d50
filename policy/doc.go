// Package policy holds the policy model and its evaluation. It is pure: no
// network or disk I/O, so every decision can be reproduced and explained.
package policy
