package appliance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/appliance/console"
	"github.com/portcullis-gw/portcullis/proxy"
	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// Device CAs and CRLs uploaded through the console live in
// <state_dir>/devices/ca/*.pem and <state_dir>/devices/crl/*.crl: the
// appliance loads them after devices.client_cas and crl_files, at start and
// on every reload (SIGHUP or the console's apply: reloadConfig), so a CA uploaded while
// the appliance runs makes certificates it issued valid on the next
// connection. That holds for the first CA of an appliance started without
// any too: its listeners start asking for certificates with that reload;
// and once the last CA is removed they stop asking.

func consoleDeviceDir(stateDir string) string { return filepath.Join(stateDir, "devices") }

// withUploadedDevices is d with the uploaded files appended, in name order.
func withUploadedDevices(d DevicesConfig, stateDir string) DevicesConfig {
	dir := consoleDeviceDir(stateDir)
	d.ClientCAs = append(slices.Clone(d.ClientCAs), uploadedFiles(filepath.Join(dir, "ca"), ".pem")...)
	d.CRLFiles = append(slices.Clone(d.CRLFiles), uploadedFiles(filepath.Join(dir, "crl"), ".crl")...)
	return d
}

func uploadedFiles(dir, ext string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ext) && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out
}

// reloadDevicesWith loads the client-CA set of d (configured and uploaded
// files) and hands it, with d's revocation policy, to the running proxy. A
// set that does not load keeps the running one and is the error.
func (a *Appliance) reloadDevicesWith(d DevicesConfig) error {
	if a.proxy == nil || !a.proxy.ClientCertsSwappable() {
		return nil // takes effect at the next start
	}
	d = withUploadedDevices(d, a.cfg.StateDir)
	cc, err := deviceCerts(&d, a.certCheck)
	if err != nil {
		return err
	}
	if cc == nil { // no CA left: the listeners stop asking
		cc = &proxy.ClientCertConfig{Policy: certcheck.ClientPolicy{CheckCRL: d.CheckCRL, RequireCRL: d.RequireCRL}}
	}
	was := a.proxy.ClientCertificates()
	if err := a.proxy.SetClientCerts(cc.CAs, cc.Policy); err != nil {
		return err
	}
	// devices.user_from is read at start (a.cfg), like the proxy's UserFrom.
	a.policies.setDevices(cc.CAs != nil, deviceUserFrom[a.cfg.Devices.UserFrom] != nil)
	if was != (cc.CAs != nil) {
		a.log.Info("device certificates " + map[bool]string{true: "on: the listeners ask for client certificates", false: "off: no device CA left"}[cc.CAs != nil])
	}
	a.log.Info("device CAs reloaded", "client_cas", len(d.ClientCAs), "crl_files", len(d.CRLFiles), "check_crl", d.CheckCRL, "require_crl", d.RequireCRL)
	return nil
}

// reloadFromConsole is the console's reload: policies (when the appliance
// has a policy directory), then the configuration file's reloadable part
// (device CAs, their revocation policy, the live settings), each refused
// whole if it does not load.
func (a *Appliance) reloadFromConsole() error {
	var errs []error
	if a.cfg.Policy.Dir != "" {
		errs = append(errs, a.reloadPolicies())
	}
	if err := a.reloadConfig(); err != nil { // consolesettingswire.go
		a.log.Error("reload from the console refused, running devices and settings kept", "err", err)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// consoleDevices are the console's device-certificate hooks.
func (a *Appliance) consoleDevices() *console.DevicesOptions {
	dir := consoleDeviceDir(a.cfg.StateDir)
	for _, sub := range []string{"ca", "crl"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			a.log.Error("console device directory", "err", err)
		}
	}
	return &console.DevicesOptions{
		Dir:        dir,
		Configured: func() ([]string, []string) { d := a.devicesConfig(); return d.ClientCAs, d.CRLFiles },
		CheckSet: func(cas, crls [][]byte) error {
			if len(cas) == 0 {
				if len(crls) > 0 {
					return errors.New("CRLs need a device CA: upload the CA first")
				}
				return nil // no CA: the listeners stop asking for certificates
			}
			if _, err := certcheck.LoadClientCAs(cas, crls); err != nil {
				return fmt.Errorf("%w (bundles and CRLs numbered with devices.client_cas and crl_files first, then the uploaded ones by name)", err)
			}
			return nil
		},
		Live:        func() bool { return a.proxy != nil && a.proxy.ClientCertsSwappable() },
		ApplianceCA: func() []byte { return a.certs.CA().CertPEM() }, // the CA in force (reloadCA)
		PassThrough: func() []console.PassThroughEntry {
			if a.proxy == nil {
				return nil
			}
			list := a.proxy.PassThrough()
			out := make([]console.PassThroughEntry, len(list))
			for i, e := range list {
				out[i] = console.PassThroughEntry{Host: e.Host, Family: e.Family, Expires: e.Expires}
			}
			return out
		},
		RemovePassThrough: func(host, family string) bool {
			if a.proxy == nil {
				return false
			}
			ok := a.proxy.RemovePassThrough(host, family)
			if ok {
				a.log.Info("pass-through entry removed", "host", host, "family", family, "by", "console")
			}
			return ok
		},
		StaticBypass: a.cfg.Access.BypassHosts,
	}
}
