package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// bpffsRoot is where the kernel expects bpffs (an empty sysfs directory when
// nothing is mounted there). systemd mounts it at boot, but a fresh mount
// namespace does not have it: `ip netns exec` remounts /sys, and containers
// often start without it.
const bpffsRoot = "/sys/fs/bpf"

// ensureBPFFS makes sure the pin directory can be created on bpffs. A pin
// directory below /sys/fs/bpf where no bpffs is mounted gets bpffs mounted at
// /sys/fs/bpf, and the mount point is returned. Elsewhere, the nearest
// existing ancestor must already be on bpffs.
//
// A bpffs mounted here lives as long as the mount namespace: under `ip netns
// exec` that is the daemon's own, so its pins go with it when it exits (the
// tc filter stays, the TCX link does not). Run the daemon with `nsenter
// --net` to keep the host's /sys/fs/bpf.
func ensureBPFFS(pinDir string) (mounted string, err error) {
	existing := filepath.Dir(pinDir)
	for {
		if _, err := os.Stat(existing); err == nil || existing == "/" {
			break
		}
		existing = filepath.Dir(existing)
	}
	on, err := onBPFFS(existing)
	if err != nil {
		return "", err
	}
	if on {
		return "", nil
	}
	if !strings.HasPrefix(pinDir, bpffsRoot+"/") {
		return "", fmt.Errorf("%w: pin directory %s is not on bpffs: mount it (mount -t bpf bpf %s) or choose one below %s",
			ErrInvalidConfig, pinDir, filepath.Dir(pinDir), bpffsRoot)
	}
	if err := unix.Mount("bpf", bpffsRoot, "bpf", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
		if errors.Is(err, unix.EPERM) {
			return "", fmt.Errorf("%w: no bpffs at %s and mounting it needs CAP_SYS_ADMIN: mount it first (mount -t bpf bpf %s)",
				ErrMissingPrivilege, bpffsRoot, bpffsRoot)
		}
		return "", fmt.Errorf("no bpffs at %s, and mounting it failed: %w", bpffsRoot, err)
	}
	return bpffsRoot, nil
}

func onBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Type == unix.BPF_FS_MAGIC, nil
}
