package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// modulePatch is a dependency the bench can build the gateway against with
// changes proposed upstream (see the README's Performance section), one patch
// each: the module's copy from the module cache, patched in a temporary folder, and the
// main go.mod plus one replace per patched module, given to the build as
// -modfile, so the shipped build and go.mod never see it.
type modulePatch struct {
	flag    string // the bench's flag that turns it on
	module  string
	dir     string   // under tests/bench: the patches and their README
	patches []string // applied in this order
	on      bool
}

var modulePatches = []*modulePatch{
	{flag: "paho-patched", module: "github.com/eclipse/paho.golang", dir: "pahopatch", patches: []string{"read.patch"}},
	{flag: "badger-patched", module: "github.com/dgraph-io/badger/v4", dir: "badgerpatch", patches: []string{"compact.patch", "vlogsync.patch"}},
}

// files are the patches' paths from the repository root.
func (p *modulePatch) files() []string {
	out := make([]string, len(p.patches))
	for i, name := range p.patches {
		out[i] = filepath.Join("tests", "bench", p.dir, name)
	}
	return out
}

// patchedModfile patches a copy of every module turned on under dir, writes
// the go.mod that replaces them (and a copy of go.sum beside it) into dir and
// returns its path, or "" when no patch is on. The bench runs from the
// repository root.
func patchedModfile(dir string) (string, error) {
	var on []*modulePatch
	for _, p := range modulePatches {
		if p.on {
			on = append(on, p)
		}
	}
	if len(on) == 0 {
		return "", nil
	}
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		return "", fmt.Errorf("module patch: run the bench from the repository root: %w", err)
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		return "", fmt.Errorf("module patch: %w", err)
	}
	for _, p := range on {
		patched, err := p.apply(dir)
		if err != nil {
			return "", err
		}
		mod = append(mod, fmt.Sprintf("\nreplace %s => %s\n", p.module, patched)...)
		fmt.Printf("patched      gateway built with %s patched by %s\n", p.module, strings.Join(p.files(), ", "))
	}
	path := filepath.Join(dir, "patched.mod")
	if err := os.WriteFile(path, mod, 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "patched.sum"), sum, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// apply copies p's module from the module cache below dir, applies the
// patches and returns the copy's path.
func (p *modulePatch) apply(dir string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", p.module).Output()
	if err != nil {
		return "", fmt.Errorf("module patch: locate %s in the module cache: %w", p.module, err)
	}
	src := strings.TrimSpace(string(out))
	patched := filepath.Join(dir, p.dir)
	if err := copyTree(src, patched); err != nil {
		return "", fmt.Errorf("module patch: copy %s: %w", src, err)
	}
	for _, f := range p.files() {
		patch, err := filepath.Abs(f)
		if err != nil {
			return "", err
		}
		apply := exec.Command("git", "apply", patch)
		apply.Dir = patched
		if out, err := apply.CombinedOutput(); err != nil {
			return "", fmt.Errorf("module patch: apply %s: %v\n%s", patch, err, out)
		}
	}
	return patched, nil
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
