//go:build !linux

package main

import "errors"

func releaseCodePages() (int, error) {
	return 0, errors.New("releasing start-up pages needs Linux")
}
