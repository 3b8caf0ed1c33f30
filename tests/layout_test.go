package tests

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/config"
)

const module = "github.com/industryos/gateway"

// pkgImports is what one directory's Go files import, split into the
// production files and the _test.go files.
type pkgImports struct {
	prod, test map[string][]string // import path -> files importing it
}

// readImports parses the import blocks of every Go file under root, build
// tags ignored: a file that is only built on armv7 or with a custom tag must
// follow the same rule.
func readImports(t *testing.T, root string) map[string]*pkgImports {
	t.Helper()
	out := map[string]*pkgImports{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "node_modules" || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := module
		if rel != "." {
			pkg += "/" + filepath.ToSlash(rel)
		}
		p := out[pkg]
		if p == nil {
			p = &pkgImports{prod: map[string][]string{}, test: map[string][]string{}}
			out[pkg] = p
		}
		m := p.prod
		if strings.HasSuffix(path, "_test.go") {
			m = p.test
		}
		for _, is := range f.Imports {
			ip, _ := strconv.Unquote(is.Path.Value)
			m[ip] = append(m[ip], filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading imports: %v", err)
	}
	return out
}

func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// southbound names a protocol package: a folder under protocols/ that is not
// the northbound client, the config format, the registry or support code.
func southbound(pkg string) (string, bool) {
	rest, ok := strings.CutPrefix(pkg, module+"/protocols/")
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, "/")
	switch name {
	case "kit", "all", "platform", "config":
		return "", false
	}
	return name, true
}

// TestDependencyRule enforces the layering DESIGN.md and protocols/README.md
// describe, by import path: protocols are plain Go below the actors, the
// runtime pieces and the journal depend on nothing of ours, and no package
// reaches up into the binary or the end-to-end tests.
func TestDependencyRule(t *testing.T) {
	pkgs := readImports(t, "..")
	if len(pkgs) < 20 {
		t.Fatalf("found only %d packages under the module root; is the test run from tests/?", len(pkgs))
	}
	var bad []string
	violate := func(pkg, kind, imp string, files []string, why string) {
		bad = append(bad, pkg[len(module)+1:]+" ("+kind+": "+strings.Join(files, ", ")+") imports "+imp+": "+why)
	}
	for pkg, p := range pkgs {
		for kind, m := range map[string]map[string][]string{"code": p.prod, "tests": p.test} {
			for imp, files := range m {
				switch {
				case under(imp, module+"/cmd") || (under(imp, module+"/tests") && !under(pkg, module+"/tests")):
					violate(pkg, kind, imp, files, "nothing imports the binary or the end-to-end tests")
				case under(pkg, module+"/protocols") && under(imp, module+"/actors"):
					violate(pkg, kind, imp, files, "protocols are plain Go below the actors")
				case under(pkg, module+"/protocols") && under(imp, "github.com/asynkron/protoactor-go"):
					violate(pkg, kind, imp, files, "protocols do not use the actor runtime")
				}
				if kind != "code" {
					continue
				}
				if _, isProto := southbound(imp); isProto && under(pkg, module+"/actors") {
					violate(pkg, kind, imp, files, "the runtime reaches protocols through their registries (protocols.Register, RegisterService), so a build tag can leave one out")
				}
				for _, leaf := range []string{"persistence", "mailbox", "supervisor"} {
					if under(pkg, module+"/"+leaf) && under(imp, module) && !under(imp, module+"/"+leaf) {
						violate(pkg, kind, imp, files, leaf+" imports nothing of the gateway")
					}
				}
				if under(pkg, module+"/protocols/kit") && under(imp, module+"/protocols") &&
					!under(imp, module+"/protocols/kit") && imp != module+"/protocols" {
					violate(pkg, kind, imp, files, "support code in protocols/kit serves protocols and imports none")
				}
				if name, ok := southbound(pkg); ok {
					other, isProto := southbound(imp)
					if isProto && other != name {
						violate(pkg, kind, imp, files, "a protocol does not import another; shared code belongs in protocols/kit")
					}
					if under(imp, module+"/protocols/platform") || under(imp, module+"/protocols/config") {
						violate(pkg, kind, imp, files, "a southbound protocol does not depend on the northbound client or the gateway's config")
					}
				}
			}
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// TestDependencyRuleSeesViolations: the rule's walker must see a file's
// imports, or the test above passes on an empty tree.
func TestDependencyRuleSeesViolations(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "protocols", "fake")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := "package fake\n\nimport _ \"" + module + "/actors\"\n"
	if err := os.WriteFile(filepath.Join(dir, "fake.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgs := readImports(t, root)
	p := pkgs[module+"/protocols/fake"]
	if p == nil || len(p.prod[module+"/actors"]) != 1 {
		t.Fatalf("walker missed the import: %+v", pkgs)
	}
	if name, ok := southbound(module + "/protocols/fake/sub"); !ok || name != "fake" {
		t.Fatalf("southbound(protocols/fake/sub) = %q, %v", name, ok)
	}
}

// TestBuildTags: every file of protocols/all links one protocol under the
// tag the config names when the protocol is missing from a build.
func TestBuildTags(t *testing.T) {
	files, err := filepath.Glob("../protocols/all/*.go")
	if err != nil || len(files) < 5 {
		t.Fatalf("protocols/all: %v %v", files, err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".go")
		if name == "doc" {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		line, _, _ := strings.Cut(string(raw), "\n")
		tag, ok := config.BuildTag(name)
		if !ok || line != "//go:build !custom || "+tag {
			t.Errorf("%s: first line %q, config.BuildTag(%q) = %q, %v", f, line, name, tag, ok)
		}
	}
}
