// Package atomicfile replaces small files (the device registry, remote
// configuration, credentials, certificates) so that a crash or power cut at
// any moment leaves either the old content or the new, never a torn file:
// edge boxes lose power far more often than servers do.
//
// It imports nothing of the gateway, so the config loader, the platform
// client, protocols and the journal can all share it.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data and mode perm. The data goes to a temporary
// file in the same directory (a rename is only atomic within one
// filesystem), is synced, renamed over path, and the directory is synced so
// the rename itself survives a power cut.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Best effort: some filesystems refuse to sync a directory, and the
	// file itself is already complete.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
