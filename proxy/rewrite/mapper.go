package rewrite

// Mapper translates hosts (lower-case, no port, no trailing dot). Safe for
// concurrent use.
type Mapper interface {
	// Suffix: origin host -> suffixed host, ok=false when the host must
	// stay as is. (The proxy's implementation records unknown hosts as
	// "discovered" and decides.)
	Suffix(originHost string) (suffixed string, ok bool)
	// Unsuffix: suffixed host -> origin host, ok=false when not a proxied
	// host.
	Unsuffix(suffixedHost string) (origin string, ok bool)
}

// WildcardMapper is implemented by Mappers that can map a wildcard
// (*.parent) as found in a Content-Security-Policy host-source. CSP leaves
// wildcard sources as they are when the Mapper does not implement it.
type WildcardMapper interface {
	// SuffixWildcard maps the parent of "*.parent" (lower-case, no "*.")
	// to its suffixed form, e.g. sharepoint.com -> sharepoint.com.gw.test,
	// ok=false when the wildcard must stay as is.
	SuffixWildcard(parent string) (suffixed string, ok bool)
}
