// Package catalog embeds the built-in app catalog: the public domains and
// named activities of common SaaS apps and of the lab apps. It is data only;
// the policy package parses and validates it like any admin file, so the
// shipped catalog obeys the same rules as admins' additions.
package catalog

import _ "embed"

// YAML is the built-in catalog, a policy file holding only apps.
//
//go:embed builtin.yaml
var YAML []byte

// Name is the file name errors in the built-in catalog are reported under.
const Name = "catalog/builtin.yaml"
