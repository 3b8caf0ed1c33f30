//go:build !race

package arrays

const raceEnabled = false
