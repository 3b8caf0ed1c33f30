package golden

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// Section markers in a README. What lies between a begin and its end is
// generated; edit the field table or sample.json instead.
func begin(name string) string { return "<!-- " + name + ":begin -->" }
func end(name string) string   { return "<!-- " + name + ":end -->" }

// Regenerate is how to bring a README up to date; failures say it.
const Regenerate = "go generate ./protocols/... (or go test -run TestREADME -update in the protocol's folder)"

// README checks that each named block of the README at path holds what
// blocks says (the field tables, the sample config), and rewrites the
// blocks under -update. A README without a block's markers fails: the
// block is how the reference stays in step with the code.
func README(t *testing.T, path string, blocks map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, stale, err := apply(string(raw), blocks)
	if err != nil {
		t.Fatalf("%s: %v, then run %s", path, err, Regenerate)
	}
	if len(stale) == 0 {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is stale (%s): run %s", path, strings.Join(stale, ", "), Regenerate)
}

// JSONBlock is a fenced JSON code block for a sample config.
func JSONBlock(raw []byte) string {
	return fmt.Sprintf("```json\n%s\n```", strings.TrimRight(string(raw), "\n"))
}

// apply replaces each block's text and names the blocks that changed.
func apply(text string, blocks map[string]string) (string, []string, error) {
	out := text
	var stale []string
	for _, name := range sortedKeys(blocks) {
		b, e := begin(name), end(name)
		i := strings.Index(out, b)
		j := strings.Index(out, e)
		if i < 0 || j < i {
			return "", nil, fmt.Errorf("no %s ... %s markers; add them where the generated %s block goes", b, e, name)
		}
		body := "\n" + strings.TrimSuffix(blocks[name], "\n") + "\n"
		if out[i+len(b):j] != body {
			stale = append(stale, name)
			out = out[:i+len(b)] + body + out[j:]
		}
	}
	return out, stale, nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// ProtocolREADME is a protocol's TestREADME: its README's "fields" block is
// the field tables' reference and its "sample" block is sample.json.
func ProtocolREADME(t *testing.T, sample []byte, sections ...spec.Section) {
	t.Helper()
	README(t, "README.md", map[string]string{
		"fields": spec.Markdown(sections...),
		"sample": JSONBlock(sample),
	})
}
