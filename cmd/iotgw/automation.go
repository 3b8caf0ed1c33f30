package main

import (
	"fmt"
	"io"

	"github.com/industryos/gateway/actors/automation"
)

// checkAutomation validates automation.yaml when there is one: every
// problem with its path, false when any is an error.
func checkAutomation(path string, stdout, stderr io.Writer) bool {
	cfg, ps, err := automation.Load(path)
	if ps != nil {
		for _, p := range ps.List {
			fmt.Fprintln(stderr, p.String())
		}
	}
	if err != nil {
		if ps == nil {
			fmt.Fprintln(stderr, err)
		}
		fmt.Fprintf(stderr, "%s: invalid automation\n", path)
		return false
	}
	if cfg != nil {
		fmt.Fprintf(stdout, "%s: %d forwards, %d tasks\n", path, len(cfg.Forwards), len(cfg.Tasks))
	}
	return true
}
