package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResources(t *testing.T) {
	for _, c := range []struct {
		section string
		want    int64
		err     string
	}{
		{``, 0, ""},
		{`, "resources": {"memoryLimitMB": 96}`, 96, ""},
		{`, "resources": {"memoryLimitMB": 8}`, 0, "resources.memoryLimitMB: 8 is below"},
		{`, "resources": {"memoryLimitMB": "lots"}`, 0, "resources.memoryLimitMB"},
		{`, "resources": {"memoryLimitMb": 96}`, 0, "memoryLimitMb"},
		{`, "resources": {"keepStartupPages": "yes"}`, 0, "resources.keepStartupPages"},
		{`, "resources": {"maxProcs": -1}`, 0, "resources.maxProcs: -1 is out of range"},
		{`, "resources": {"maxProcs": 2}`, 0, ""},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "tb_gateway.json")
		main := `{"thingsboard": {"host": "h", "port": 1883, "security": {"accessToken": "t"}}, "connectors": []` + c.section + `}`
		if err := os.WriteFile(path, []byte(main), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, func(string) string { return "" })
		var problems []string
		for _, p := range cfg.Problems.List {
			problems = append(problems, p.String())
		}
		all := strings.Join(problems, "\n")
		if c.err == "" {
			if err != nil {
				t.Errorf("%s: %v", c.section, err)
			} else if cfg.Resources.MemoryLimitMB != c.want {
				t.Errorf("%s: %d", c.section, cfg.Resources.MemoryLimitMB)
			} else if strings.Contains(c.section, "maxProcs") && cfg.Resources.MaxProcs != 2 {
				t.Errorf("%s: maxProcs %d", c.section, cfg.Resources.MaxProcs)
			}
			continue
		}
		if !strings.Contains(all, c.err) {
			t.Errorf("%s: want %q in %q", c.section, c.err, all)
		}
	}
}
