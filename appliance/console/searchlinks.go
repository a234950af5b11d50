package console

import (
	"net/url"
	"slices"
	"strconv"
)

// WithoutValue is the current search without one value of key (a chip's
// remove link), from page 1.
func (l searchLinks) WithoutValue(key, value string) string {
	v := cloneValues(l.v)
	v.Del("after")
	v[key] = slices.DeleteFunc(v[key], func(s string) bool { return s == value })
	if len(v[key]) == 0 {
		v.Del(key)
	}
	return "/activity?" + v.Encode()
}

// Or is the current search also matching key=value (OR with the key's
// other values), from page 1.
func (l searchLinks) Or(key, value string) string {
	v := cloneValues(l.v)
	v.Del("after")
	if !slices.Contains(v[key], value) {
		v.Add(key, value)
	}
	v["not_"+key] = slices.DeleteFunc(v["not_"+key], func(s string) bool { return s == value })
	if len(v["not_"+key]) == 0 {
		v.Del("not_" + key)
	}
	return "/activity?" + v.Encode()
}

// Not is the current search excluding key=value, from page 1.
func (l searchLinks) Not(key, value string) string {
	v := cloneValues(l.v)
	v.Del("after")
	v[key] = slices.DeleteFunc(v[key], func(s string) bool { return s == value })
	if len(v[key]) == 0 {
		v.Del(key)
	}
	if !slices.Contains(v["not_"+key], value) {
		v.Add("not_"+key, value)
	}
	return "/activity?" + v.Encode()
}

// drawerSearch is the search the drawer was opened from (its "search"
// parameter), so its links add to or exclude from that search; without
// one, the time range alone.
func drawerSearch(v url.Values) url.Values {
	if s := v.Get("search"); s != "" {
		if in, err := url.ParseQuery(s); err == nil {
			return in
		}
	}
	back := url.Values{}
	for _, k := range []string{"since", "from", "to"} {
		if val := v.Get(k); val != "" {
			back.Set(k, val)
		}
	}
	if !back.Has("since") && !back.Has("from") {
		back.Set("since", "24h")
	}
	return back
}

// DrawerURL opens an event's drawer (its time in Unix nanoseconds and
// sequence number) with the current search.
func (av activityView) DrawerURL(ts, seq int64) string {
	return "/activity/event?ts=" + strconv.FormatInt(ts, 10) + "&seq=" + strconv.FormatInt(seq, 10) + "&search=" + url.QueryEscape(av.Encoded)
}

// refinement is what the "orNot" template gets: the links of the search
// and one field's value, to add it (OR) or exclude it.
type refinement struct {
	Links      searchLinks
	Key, Value string
}

func init() {
	funcs["refine"] = func(l searchLinks, key, value string) refinement { return refinement{l, key, value} }
}
