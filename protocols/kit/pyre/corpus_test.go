package pyre

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpstreamCorpus compiles every regex in upstream's config corpus: topic
// expressions (an *Expression whose *ExpressionSource is "topic", the
// legacy *TopicExpression keys, keys with keySource "topic") and the
// command filters.
func TestUpstreamCorpus(t *testing.T) {
	root := filepath.Join("..", "..", "..", "shared", "upstream-configs")
	if _, err := os.Stat(root); err != nil {
		t.Skipf("upstream config corpus not available: %v", err)
	}
	n, fallback := 0, 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return nil // not all corpus files are JSON objects we read
		}
		walkRegexes(v, func(where, expr string) {
			n++
			r, err := Compile(expr, Search)
			if err != nil {
				t.Errorf("%s: %s: %v", path, where, err)
			} else if r.Fallback() {
				fallback++
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no regexes found in the corpus")
	}
	t.Logf("%d regexes compiled, %d on the fallback engine", n, fallback)
}

func walkRegexes(v any, visit func(where, expr string)) {
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			walkRegexes(x, visit)
		}
	case map[string]any:
		for k, x := range v {
			s, ok := x.(string)
			if !ok {
				walkRegexes(x, visit)
				continue
			}
			switch {
			case k == "deviceNameFilter" || k == "attributeFilter" || k == "methodFilter",
				strings.HasSuffix(k, "TopicExpression") && k != "responseTopicExpression" && k != "requestTopicExpression",
				strings.HasSuffix(k, "Expression") && v[k+"Source"] == "topic",
				k == "key" && v["keySource"] == "topic":
				visit(k, s)
			}
		}
	}
}
