//go:build race

package race

// Enabled: this build has the race detector (-race).
const Enabled = true
