//go:build !race

// Package race tells tests whether the race detector is on, for the checks
// it changes: sync.Pool drops items at random under -race, so allocation
// counts of pooled paths only hold without it.
package race

// Enabled: this build has the race detector (-race).
const Enabled = false
