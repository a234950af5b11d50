package policy

import "testing"

func TestPathPattern(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"/api/chat.postMessage", "/api/chat.postMessage", true},
		{"/api/chat.postMessage", "/api/chat.postMessage/", false},
		{"/api/chat.postMessage", "/api/chat.postmessage", false},
		{"/files/*", "/files/a", true},
		{"/files/*", "/files/a/b", false},
		{"/files/**", "/files", true},
		{"/files/**", "/files/a/b/c", true},
		{"/files/**", "/filesx", false},
		{"/**/download.aspx", "/sites/x/_layouts/15/download.aspx", true},
		{"/**/download.aspx", "/download.aspx", true},
		{"/**/download.aspx", "/download.aspx/x", false},
		{"/a/*/c", "/a/b/c", true},
		{"/a/*/c", "/a/c", false},
		{"/", "/", true},
		{"/", "", false},
	}
	for _, tc := range tests {
		pp, err := compilePath(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := pp.match(tc.path); got != tc.want {
			t.Errorf("%s ~ %s = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
	for _, bad := range []string{"api", "/a*b", "/a?x=1"} {
		if _, err := compilePath(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
