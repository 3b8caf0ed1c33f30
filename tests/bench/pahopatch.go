package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// pahoPatched (-paho-patched) builds the gateway against the patched copy
// of paho.golang in tests/bench/pahopatch/paho.golang (see the README's
// Performance section): the main go.mod plus one replace, given to the
// build as -modfile, so the shipped build and go.mod never see it.
var pahoPatched bool

// pahoModfile writes that go.mod (and a copy of go.sum beside it) into dir
// and returns its path. The bench runs from the repository root.
func pahoModfile(dir string) (string, error) {
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		return "", fmt.Errorf("paho patch: run the bench from the repository root: %w", err)
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		return "", fmt.Errorf("paho patch: %w", err)
	}
	patched, err := filepath.Abs(filepath.Join("tests", "bench", "pahopatch", "paho.golang"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(patched, "go.mod")); err != nil {
		return "", fmt.Errorf("paho patch: %w", err)
	}
	mod = append(mod, fmt.Sprintf("\nreplace github.com/eclipse/paho.golang => %s\n", patched)...)
	path := filepath.Join(dir, "pahopatch.mod")
	if err := os.WriteFile(path, mod, 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "pahopatch.sum"), sum, 0o600); err != nil {
		return "", err
	}
	return path, nil
}
