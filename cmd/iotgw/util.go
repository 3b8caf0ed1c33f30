package main

import (
	"context"
	"os"
	"time"

	"github.com/mattn/go-isatty"
)

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func isattyTerminal(f *os.File) bool { return isatty.IsTerminal(f.Fd()) }
