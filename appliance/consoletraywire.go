package appliance

import (
	"net"
	"strings"

	"github.com/portcullis-gw/portcullis/appliance/console"
)

// consoleHosts are the names and addresses the console is reached by: a
// pending change to what decides connections to them could lock the admin
// out, so the console applies it only with a confirmation timeout.
func consoleHosts(cc ConsoleConfig) []string {
	var out []string
	if host, _, err := net.SplitHostPort(cc.Listen); err == nil && host != "" && host != "0.0.0.0" && host != "::" {
		out = append(out, strings.ToLower(host))
	}
	for _, n := range cc.Names {
		out = append(out, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	return out
}

// discoveredForConsole is the management API's GET /discovered for the
// console's apps page: the suffix proxy's discovered domains.
func (a *Appliance) discoveredForConsole() []console.DiscoveredDomain {
	if a.proxy == nil {
		return nil
	}
	list := a.proxy.DiscoveredDomains()
	out := make([]console.DiscoveredDomain, len(list))
	for i, d := range list {
		out[i] = console.DiscoveredDomain{Host: d.Host, FirstSeen: d.FirstSeen, LastSeen: d.LastSeen, Seen: d.Seen, Via: d.Via}
	}
	return out
}
