package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

// TestHelp: every subcommand's --help exits 0 and lists each of its flags with a default.
func TestHelp(t *testing.T) {
	for _, c := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"run", "--help"}, []string{"--c", "--log-level"}},
		{[]string{"check", "-h"}, []string{"--c"}},
		{[]string{"demo", "--help"}, []string{"--devices", "--registers", "--poll", "--broker", "--duration", "--log-level"}},
		{[]string{"sim", "modbus", "--help"}, []string{"--devices", "--registers", "--port", "--host", "--poll", "--config"}},
		{[]string{"health", "--help"}, []string{"--url", "--timeout"}},
		{[]string{"sim", "--help"}, nil},
		{[]string{"--help"}, nil},
	} {
		var out, errOut bytes.Buffer
		if code := run(c.args, &out, &errOut); code != 0 {
			t.Errorf("%v: exit %d\n%s", c.args, code, errOut.String())
			continue
		}
		help := out.String() + errOut.String()
		for _, f := range c.flags {
			i := strings.Index(help, "  "+f+"\n")
			if i < 0 || !strings.Contains(help[i:], "(default ") {
				t.Errorf("%v: %s or its default missing in\n%s", c.args, f, help)
			}
		}
	}
	var errOut bytes.Buffer
	if code := run([]string{"check", "--bogus"}, &errOut, &errOut); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	if flagExit(flag.ErrHelp) != 0 {
		t.Error("ErrHelp")
	}
}
