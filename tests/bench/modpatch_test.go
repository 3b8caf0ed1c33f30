package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPatchedModulesBuild keeps -paho-patched and -badger-patched working:
// each patch must still apply to the module version go.mod pins, and the
// gateway must build against the patched copies. A dependency bump that the
// patches no longer fit fails here, not in the middle of a measurement.
func TestPatchedModulesBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git applies the patches:", err)
	}
	t.Chdir(filepath.Join("..", ".."))
	dir := t.TempDir()

	if path, err := patchedModfile(dir); err != nil || path != "" {
		t.Fatalf("no patch on: got %q, %v; want no modfile", path, err)
	}
	for _, p := range modulePatches {
		p.on = true
		defer func() { p.on = false }()
	}
	modfile, err := patchedModfile(dir)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(modfile)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range modulePatches {
		want := "replace " + p.module + " => " + filepath.Join(dir, p.dir)
		if !strings.Contains(string(mod), want) {
			t.Errorf("%s lacks %q", modfile, want)
		}
	}
	if err := buildGateway(filepath.Join(dir, "iotgw"), "-modfile", modfile); err != nil {
		t.Fatal(err)
	}
}
