package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// pahoPatched (-paho-patched) builds the gateway against paho.golang with
// the packet-reading change in tests/bench/pahopatch/read.patch (see the
// README's Performance section): the module's copy from the module cache,
// patched in a temporary folder, and the main go.mod plus one replace,
// given to the build as -modfile, so the shipped build and go.mod never
// see it.
var pahoPatched bool

// pahoModfile patches a copy of paho.golang under dir, writes that go.mod
// (and a copy of go.sum beside it) into dir and returns its path. The bench
// runs from the repository root.
func pahoModfile(dir string) (string, error) {
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		return "", fmt.Errorf("paho patch: run the bench from the repository root: %w", err)
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		return "", fmt.Errorf("paho patch: %w", err)
	}
	patch, err := filepath.Abs(filepath.Join("tests", "bench", "pahopatch", "read.patch"))
	if err != nil {
		return "", err
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/eclipse/paho.golang").Output()
	if err != nil {
		return "", fmt.Errorf("paho patch: locate paho.golang in the module cache: %w", err)
	}
	src := strings.TrimSpace(string(out))
	patched := filepath.Join(dir, "paho.golang")
	if err := copyTree(src, patched); err != nil {
		return "", fmt.Errorf("paho patch: copy %s: %w", src, err)
	}
	apply := exec.Command("git", "apply", patch)
	apply.Dir = patched
	if out, err := apply.CombinedOutput(); err != nil {
		return "", fmt.Errorf("paho patch: apply %s: %v\n%s", patch, err, out)
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

// copyTree copies the regular files below src to dst, writable (the module
// cache's are read-only).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}
