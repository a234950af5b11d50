package appliance

import (
	"crypto/sha256"
	"path/filepath"

	"github.com/portcullis-gw/portcullis/proxy"
)

// reloadCA takes on reload the CA installed in <state_dir>/ca, where
// `portcullis ca import` swaps a new one in. The new CA is loaded whole and
// held to the import's checks (key, CA constraints, key sizes, the chain
// verifying) before it replaces the running one in the certificate store,
// which then mints every leaf from it and forgets the old CA's leaves; if
// anything is wrong the running CA keeps serving and the reason is logged.
func (a *Appliance) reloadCA() {
	dir := filepath.Join(a.cfg.StateDir, "ca")
	ca, err := proxy.LoadCA(dir)
	if err == nil {
		var warnings []string
		warnings, err = proxy.CheckCA(ca, proxy.CAImportOptions{MinRSABits: a.cfg.Upstream.MinRSABits, MinECBits: a.cfg.Upstream.MinECBits})
		for _, w := range warnings {
			a.log.Warn("CA", "dir", dir, "warning", w)
		}
	}
	if err != nil {
		a.log.Error("reload refused, running CA kept", "dir", dir, "ca", a.certs.CA().Certificate().Subject.CommonName, "err", err)
		return
	}
	if ca.Same(a.certs.CA()) {
		return
	}
	a.certs.SetCA(ca)
	c := ca.Certificate()
	sum := sha256.Sum256(c.Raw)
	a.log.Info("CA reloaded: new leaves chain to it", "dir", dir, "ca", c.Subject.CommonName, "issuers", len(ca.Chain()),
		"sha256", colonHex(sum[:]), "not_after", c.NotAfter.UTC())
}
