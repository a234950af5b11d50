package identity

import (
	"slices"
	"strings"
)

// ClaimMap is how an IdP's claims (OIDC) or attributes (SAML) become the
// groups and device tags policies decide on.
type ClaimMap struct {
	// GroupsClaim names the claim with the user's groups; "" is "groups".
	// SAML attributes keep their own well-known names as well.
	GroupsClaim string
	// DeviceClaims maps a claim or attribute to a device tag, given when
	// the claim is true (a JSON true, or "true"/"1"/"yes" as text):
	// {device_compliant: compliant} tags a compliant device.
	DeviceClaims map[string]string
}

func (m ClaimMap) groupsClaim() string {
	if m.GroupsClaim == "" {
		return "groups"
	}
	return m.GroupsClaim
}

// applyClaims sets groups and device tags from an ID token's claims.
func (m ClaimMap) applyClaims(id *Identity, claims map[string]any) {
	id.Groups = appendStrings(id.Groups, claims[m.groupsClaim()])
	for claim, tag := range m.DeviceClaims {
		if truthy(claims[claim]) && !slices.Contains(id.DeviceTags, tag) {
			id.DeviceTags = append(id.DeviceTags, tag)
		}
	}
	slices.Sort(id.DeviceTags)
}

// applyAttrs sets groups and device tags from SAML attributes.
func (m ClaimMap) applyAttrs(id *Identity) {
	if m.GroupsClaim != "" {
		for _, v := range id.Attrs[m.GroupsClaim] {
			if !slices.Contains(id.Groups, v) {
				id.Groups = append(id.Groups, v)
			}
		}
	}
	for attr, tag := range m.DeviceClaims {
		vs := id.Attrs[attr]
		if len(vs) == 1 && truthy(vs[0]) && !slices.Contains(id.DeviceTags, tag) {
			id.DeviceTags = append(id.DeviceTags, tag)
		}
	}
	slices.Sort(id.DeviceTags)
}

// appendStrings adds the strings of a claim value (one string, or a list)
// that are not there yet.
func appendStrings(to []string, v any) []string {
	add := func(s string) {
		if s != "" && !slices.Contains(to, s) {
			to = append(to, s)
		}
	}
	switch v := v.(type) {
	case string:
		add(v)
	case []string:
		for _, s := range v {
			add(s)
		}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				add(s)
			}
		}
	}
	return to
}

// truthy is a claim that says yes: a JSON true or a text that spells it.
// Anything else, a list included, is no.
func truthy(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1", "yes":
			return true
		}
	}
	return false
}
