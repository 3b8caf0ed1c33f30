//go:build !linux && !darwin && !freebsd

package persistence

import "errors"

// freeSpace is not implemented here: the reserve is not enforced (the journal logs so once),
// and a full disk shows only as failed writes.
func freeSpace(string) (uint64, error) {
	return 0, errors.New("free disk space is not measured on this platform")
}
