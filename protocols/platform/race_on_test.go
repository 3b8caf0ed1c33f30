//go:build race

package platform

// The race detector makes sync.Pool drop items at random, which defeats
// allocation assertions.
const raceEnabled = true
