package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// The pin directory holds every map (so a restart can take over the state),
// the attach record (how the program is attached, see attachRecord) and, by
// mode, the TCX link (keeping the program attached after the process exits)
// or the program (which the tc filter keeps attached by itself).
// It is only ever replaced whole: a new set is pinned into a temporary
// sibling directory and exchanged with the old one in a single rename, so
// the directory never shows half of one generation and half of another.

const linkPin = "link"

// tmpPattern names the temporary siblings; anything matching it is the
// leftover of a crashed Start and is removed by the next Start or Remove.
// (bpffs refuses names with dots).
func tmpPattern(pinDir string) string { return filepath.Base(pinDir) + "-tmp-*" }

// pinnedState is what a previous run left in the pin directory.
type pinnedState struct {
	record    attachRecord
	hasRecord bool
	link      link.Link     // TCX
	program   *ebpf.Program // tc
	maps      map[string]*ebpf.Map
}

func (p *pinnedState) Close() {
	if p.link != nil {
		_ = p.link.Close()
	}
	if p.program != nil {
		_ = p.program.Close()
	}
	for _, m := range p.maps {
		_ = m.Close()
	}
}

// openPinned opens what a previous run pinned in pinDir; a missing directory
// or object is simply absent from the result.
func openPinned(pinDir string, spec *ebpf.CollectionSpec) (*pinnedState, error) {
	p := &pinnedState{maps: map[string]*ebpf.Map{}}
	var err error
	if p.record, p.hasRecord, err = readRecord(pinDir); err != nil {
		return nil, err
	}
	l, err := link.LoadPinnedLink(filepath.Join(pinDir, linkPin), nil)
	switch {
	case err == nil:
		p.link = l
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open pinned link: %w", err)
	}
	prog, err := ebpf.LoadPinnedProgram(filepath.Join(pinDir, programPin), nil)
	switch {
	case err == nil:
		p.program = prog
	case !errors.Is(err, fs.ErrNotExist):
		p.Close()
		return nil, fmt.Errorf("open pinned program: %w", err)
	}
	for name := range spec.Maps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, name), nil)
		switch {
		case err == nil:
			p.maps[name] = m
		case !errors.Is(err, fs.ErrNotExist):
			p.Close()
			return nil, fmt.Errorf("open pinned map %s: %w", name, err)
		}
	}
	return p, nil
}

// pinAll pins the attachment and maps into a fresh temporary sibling of
// pinDir and returns its path; on error nothing is left behind.
func pinAll(pinDir string, att attachment, maps map[string]*ebpf.Map) (_ string, err error) {
	parent := filepath.Dir(pinDir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, tmpPattern(pinDir))
	if err != nil {
		return "", fmt.Errorf("create pin directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := att.pin(tmp); err != nil {
		return "", err
	}
	for name, m := range maps {
		if err := m.Pin(filepath.Join(tmp, name)); err != nil {
			return "", fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	return tmp, nil
}

// publish moves the pins in tmp to pinDir, exchanging atomically with a
// previous generation if there is one, and removes that generation's pins.
func publish(tmp, pinDir string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, pinDir, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, pinDir, unix.RENAME_NOREPLACE)
		if err != nil {
			return fmt.Errorf("publish pins to %s: %w", pinDir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("publish pins to %s: %w", pinDir, err)
	}
	// tmp now holds the previous generation. The new one is published and
	// its program runs first, so a failure here changes nothing that
	// matters now; what is left matches tmpPattern and goes with the next
	// Start or Remove.
	_ = os.RemoveAll(tmp)
	return nil
}

// removePins removes the pin directory and any temporary siblings. Removing
// a TCX link's pin is what detaches the program, once no process holds the
// link open any more; a tc filter is removed by removeTC.
func removePins(pinDir string) error {
	if err := os.RemoveAll(pinDir); err != nil {
		return fmt.Errorf("remove pins: %w", err)
	}
	if err := removeStaleTemps(pinDir); err != nil {
		return fmt.Errorf("remove stale pins: %w", err)
	}
	return nil
}

// removeStaleTemps removes the temporary pin directories a crashed Start may
// have left. Their links would otherwise keep a program attached forever.
func removeStaleTemps(pinDir string) error {
	stale, err := filepath.Glob(filepath.Join(filepath.Dir(pinDir), tmpPattern(pinDir)))
	if err != nil {
		return err
	}
	var errs []error
	for _, dir := range stale {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
