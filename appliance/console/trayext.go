package console

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/policy"
)

// Files outside the policy directory in the pending-changes tray: the
// device CAs and CRLs the console uploads (devices.go) and the appliance's
// configuration file (settings.go). They go through the same tray as the
// policies — staged, diffed, applied together, written atomically, kept as
// revisions, reverted by a savepoint — under names starting with "@" that
// no policy file can have:
//
//	@devices/ca/<name>.pem    an uploaded client CA (PEM)
//	@devices/crl/<name>.crl   an uploaded CRL (PEM)
//	@config                   the appliance's configuration file
//
// The policy validation sees only the policy files (policyOnly); these are
// validated by their own checks (trayValidate).

// Change kinds of the files outside the policy directory.
const (
	ChangeDeviceCA     = "device_ca"     // a client CA uploaded (Content: PEM)
	ChangeDeviceCRL    = "device_crl"    // a CRL uploaded (Content: PEM or DER as PEM)
	ChangeDeviceRemove = "device_remove" // an uploaded CA or CRL removed (File)
	ChangeSetting      = "setting"       // one setting of the config file (Setting, Content: the value as YAML)
)

const (
	extPrefix    = "@"
	extDeviceCA  = "@devices/ca/"
	extDeviceCRL = "@devices/crl/"
	extConfig    = "@config"
)

var extNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,80}\.(pem|crl)$`)

func extKind(kind string) bool {
	switch kind {
	case ChangeDeviceCA, ChangeDeviceCRL, ChangeDeviceRemove, ChangeSetting:
		return true
	}
	return false
}

// isExtFile: a tray file name of a file outside the policy directory.
func isExtFile(name string) bool {
	switch {
	case name == extConfig:
		return true
	case strings.HasPrefix(name, extDeviceCA):
		n := strings.TrimPrefix(name, extDeviceCA)
		return extNamePattern.MatchString(n) && strings.HasSuffix(n, ".pem")
	case strings.HasPrefix(name, extDeviceCRL):
		n := strings.TrimPrefix(name, extDeviceCRL)
		return extNamePattern.MatchString(n) && strings.HasSuffix(n, ".crl")
	}
	return false
}

// policyOnly drops the files outside the policy directory.
func policyOnly(files map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(files))
	for k, v := range files {
		if !strings.HasPrefix(k, extPrefix) {
			out[k] = v
		}
	}
	return out
}

// trayPath is where a tray file lives on disk.
func (c *Console) trayPath(name string) string {
	switch {
	case name == extConfig && c.opt.Settings != nil:
		return c.opt.Settings.ConfigFile
	case strings.HasPrefix(name, extDeviceCA) && c.opt.Devices != nil:
		return deviceFilePath(c.opt.Devices.Dir, "ca", strings.TrimPrefix(name, extDeviceCA))
	case strings.HasPrefix(name, extDeviceCRL) && c.opt.Devices != nil:
		return deviceFilePath(c.opt.Devices.Dir, "crl", strings.TrimPrefix(name, extDeviceCRL))
	}
	return filepath.Join(c.opt.PolicyDir, name)
}

// trayFiles is the policy directory plus the files outside it the console
// manages. Without a policy directory the outside files still are (and
// ErrNoPolicyDir is not an error then).
func (c *Console) trayFiles() (map[string][]byte, []string, error) {
	files, names, err := c.policyFiles()
	if errors.Is(err, ErrNoPolicyDir) && (c.opt.Devices != nil || c.opt.Settings != nil) {
		files, err = map[string][]byte{}, nil
	}
	if err != nil {
		return files, names, err
	}
	if d := c.opt.Devices; d != nil {
		for _, sub := range []struct{ dir, prefix string }{{"ca", extDeviceCA}, {"crl", extDeviceCRL}} {
			ents, err := os.ReadDir(filepath.Join(d.Dir, sub.dir))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, nil, fmt.Errorf("device files: %w", err)
			}
			for _, e := range ents {
				name := sub.prefix + e.Name()
				if e.IsDir() || !isExtFile(name) {
					continue
				}
				b, err := os.ReadFile(filepath.Join(d.Dir, sub.dir, e.Name()))
				if err != nil {
					return nil, nil, fmt.Errorf("device files: %w", err)
				}
				files[name] = b
			}
		}
	}
	if s := c.opt.Settings; s != nil && s.ConfigFile != "" {
		b, err := os.ReadFile(s.ConfigFile)
		if err != nil {
			return nil, nil, fmt.Errorf("configuration file: %w", err)
		}
		files[extConfig] = b
	}
	return files, names, nil
}

// trayValidate is the policy validation of the policy files plus the
// checks of the files outside: the device CA set as the appliance would
// load it, the configuration as the appliance would load it.
func (c *Console) trayValidate(files map[string][]byte) (*policy.PolicySet, []Problem) {
	set, problems := c.validate(policyOnly(files))
	disk, _, _ := c.trayFiles()
	changed := func(k string) bool { b, ok := disk[k]; return !ok || !bytes.Equal(b, files[k]) }
	devicesChanged := false
	for k := range disk {
		if strings.HasPrefix(k, "@devices/") {
			if _, ok := files[k]; !ok {
				devicesChanged = true // removed
			}
		}
	}
	for k := range files {
		if strings.HasPrefix(k, "@devices/") && changed(k) {
			devicesChanged = true
		}
	}
	if d := c.opt.Devices; d != nil && d.CheckSet != nil && devicesChanged {
		cas, crls := c.deviceSet(files)
		if err := d.CheckSet(cas, crls); err != nil {
			problems = append(problems, Problem{File: "@devices", Kind: "device_cas", Message: err.Error(),
				Text: "device CAs and CRLs: " + err.Error()})
		}
	}
	if s := c.opt.Settings; s != nil && s.Validate != nil {
		if b, ok := files[extConfig]; ok && changed(extConfig) {
			if err := s.Validate(b); err != nil {
				problems = append(problems, Problem{File: extConfig, Kind: "config", Message: err.Error(),
					Text: "configuration: " + err.Error()})
			}
		}
	}
	return set, problems
}

// deviceSet is every CA bundle and CRL the appliance would load: the
// configured files (devices.client_cas, crl_files) then the uploaded ones
// in name order.
func (c *Console) deviceSet(files map[string][]byte) (cas, crls [][]byte) {
	d := c.opt.Devices
	if d.Configured != nil {
		ca, crl := d.Configured()
		for _, p := range ca {
			if b, err := os.ReadFile(p); err == nil {
				cas = append(cas, b)
			}
		}
		for _, p := range crl {
			if b, err := os.ReadFile(p); err == nil {
				crls = append(crls, b)
			}
		}
	}
	for _, k := range slices.Sorted(mapsKeys(files)) {
		switch {
		case files[k] == nil:
		case strings.HasPrefix(k, extDeviceCA):
			cas = append(cas, files[k])
		case strings.HasPrefix(k, extDeviceCRL):
			crls = append(crls, files[k])
		}
	}
	return cas, crls
}

// extToChange fills a change of a file outside the policy directory.
func (c *Console) extToChange(in stageInput, ch Change) (Change, string, error) {
	switch in.Kind {
	case ChangeDeviceCA, ChangeDeviceCRL, ChangeDeviceRemove:
		if c.opt.Devices == nil {
			return ch, "", fmt.Errorf("%w: this appliance does not manage device certificates from the console", ErrBadChange)
		}
	case ChangeSetting:
		if c.opt.Settings == nil || c.opt.Settings.ConfigFile == "" {
			return ch, "", fmt.Errorf("%w: this appliance has no configuration file the console may edit", ErrBadChange)
		}
	}
	switch in.Kind {
	case ChangeDeviceCA, ChangeDeviceCRL:
		if in.Content == nil {
			return ch, "", fmt.Errorf("%w: %s needs content (PEM)", ErrBadChange, in.Kind)
		}
		name, pemText, err := deviceUpload(in.Kind, []byte(*in.Content), c.opt.Now())
		if err != nil {
			return ch, "", fmt.Errorf("%w: %v", ErrBadChange, err)
		}
		ch.File, ch.Content = name, &pemText
	case ChangeDeviceRemove:
		if !strings.HasPrefix(in.File, extDeviceCA) && !strings.HasPrefix(in.File, extDeviceCRL) || !isExtFile(in.File) {
			return ch, "", fmt.Errorf("%w: device_remove names an uploaded CA or CRL (file @devices/ca/… or @devices/crl/…)", ErrBadChange)
		}
		ch.Content = nil
	case ChangeSetting:
		if in.Content == nil {
			return ch, "", fmt.Errorf("%w: setting needs content (the value)", ErrBadChange)
		}
		if _, ok := c.editableSetting(in.Setting); !ok {
			return ch, "", fmt.Errorf("%w: setting %q cannot be edited from the console", ErrBadChange, in.Setting)
		}
		ch.File, ch.Setting = extConfig, in.Setting
	}
	return ch, "-", nil
}

// applyExtChange is one change's effect on its file outside the policy
// directory.
func (c *Console) applyExtChange(ch Change, before []byte, note func(string) string) ([]byte, string, error) {
	switch ch.Kind {
	case ChangeDeviceCA, ChangeDeviceCRL:
		if ch.Content == nil {
			return nil, "", fmt.Errorf("%w: content missing", ErrBadChange)
		}
		if before != nil {
			return nil, "", fmt.Errorf("%w: %s is already uploaded", ErrBadChange, ch.File)
		}
		return []byte(*ch.Content), note(describeUpload(ch.File, []byte(*ch.Content))), nil
	case ChangeDeviceRemove:
		if before == nil {
			return nil, "", fmt.Errorf("%w: %s is not uploaded", ErrBadChange, ch.File)
		}
		return nil, note("removed " + describeUpload(ch.File, before)), nil
	case ChangeSetting:
		return c.applySetting(ch, before, note)
	}
	return nil, "", fmt.Errorf("%w: unknown kind %q", ErrBadChange, ch.Kind)
}

// deviceFilePath is an uploaded file's path, its directory made if needed
// (the write that follows reports any failure).
func deviceFilePath(dir, sub, name string) string {
	_ = os.MkdirAll(filepath.Join(dir, sub), 0o755)
	return filepath.Join(dir, sub, name)
}
