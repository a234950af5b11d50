package control

import (
	"net/http"
	"strings"
)

// ServeEndpoint serves r if its path is under the Endpoint prefix and
// reports whether it did; the proxy calls it on every controlled host
// before anything else, so no path under the prefix ever reaches the
// origin. report receives each accepted attempt (it runs on the request's
// goroutine; nil drops them).
//
//	POST {Endpoint}report       an attempt the script saw (JSON)
//	GET  {Endpoint}notice?s=... the monitoring notice
//	POST {Endpoint}notice       its Continue
func (c *Controller) ServeEndpoint(w http.ResponseWriter, r *http.Request, report func(Report)) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, c.endpoint)
	if !ok {
		return false
	}
	switch rest {
	case "report":
		c.serveReport(w, r, report)
	case "notice":
		c.serveNotice(w, r)
	default:
		httpError(w, http.StatusNotFound)
	}
	return true
}
