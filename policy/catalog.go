package policy

import (
	"sync"

	"github.com/portcullis-gw/portcullis/policy/catalog"
)

// builtinCatalog is parsed once; a broken embedded catalog is a build
// defect that the catalog test catches, so Compile reports it like any
// policy error rather than panicking.
var builtinCatalog = sync.OnceValues(func() (*PolicySet, error) {
	return Parse(catalog.Name, catalog.YAML)
})

// BuiltinApps returns a copy of the shipped app catalog.
func BuiltinApps() ([]App, error) {
	set, err := builtinCatalog()
	if err != nil {
		return nil, err
	}
	return append([]App(nil), set.Apps...), nil
}
