package main

import (
	"flag"
	"fmt"
	"io"
)

// newFlagSet is a subcommand's flag set. Its --help lists every flag with its default,
// zero defaults included (flag.PrintDefaults leaves those out), and --help exits 0.
func newFlagSet(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: iotgw %s [flags]\n\nflags:\n", name)
		fs.VisitAll(func(f *flag.Flag) {
			def := f.DefValue
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(out, "  --%s\n        %s (default %s)\n", f.Name, f.Usage, def)
		})
	}
	return fs
}
