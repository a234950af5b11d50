package deptest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryPackageHasOneDocComment walks the module and requires exactly one
// package doc comment per directory of non-test Go files.
func TestEveryPackageHasOneDocComment(t *testing.T) {
	root := "../.."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bpf" || name == "bin") {
			return filepath.SkipDir
		}
		entries, _ := os.ReadDir(path)
		docs, goFiles := 0, 0
		for _, e := range entries {
			n := e.Name()
			if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
				continue
			}
			goFiles++
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(path, n), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				return err
			}
			if f.Doc != nil {
				docs++
			}
		}
		if goFiles > 0 && docs != 1 {
			t.Errorf("%s: %d package doc comments, want exactly 1", path, docs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
