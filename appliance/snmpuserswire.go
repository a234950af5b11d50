package appliance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/console"
	"github.com/portcullis-gw/portcullis/appliance/snmp"
)

// SNMPv3 users from the console: the appliance owns snmp.users_file, an
// snmpd configuration fragment (format and the reasons for it in
// appliance/snmp/users.go), rewrites it whole and atomically on each add or
// remove, keeping the file's mode and group (snmpd reads it again after
// dropping privileges, so its group must be snmpd's), and sends snmpd
// SIGHUP (snmp.snmpd_pid_file) to read it. These changes do not go through
// the pending-changes tray: its revisions keep whole files, and this one
// holds keys.

type snmpUsers struct {
	file, pidFile string
	now           func() time.Time
	mu            sync.Mutex
}

func (a *Appliance) consoleSNMPUsers() *console.SNMPUsersOptions {
	c := a.cfg.SNMP
	if c.UsersFile == "" {
		return nil
	}
	u := &snmpUsers{file: c.UsersFile, pidFile: c.SnmpdPIDFile, now: time.Now}
	return &console.SNMPUsersOptions{File: c.UsersFile,
		List: func() ([]console.SNMPUser, error) {
			users, err := u.list()
			out := make([]console.SNMPUser, len(users))
			for i, x := range users {
				out[i] = console.SNMPUser{Name: x.Name, Auth: x.Auth, Priv: x.Priv, View: x.View, Added: x.Added}
			}
			return out, err
		},
		Add: func(in console.SNMPUserInput) (string, error) {
			return u.add(snmp.UserInput{Name: in.Name, Auth: in.Auth, Priv: in.Priv, View: in.View,
				AuthPassphrase: in.AuthPassphrase, PrivPassphrase: in.PrivPassphrase})
		},
		Remove: u.remove,
	}
}

func (u *snmpUsers) read() (*snmp.Users, fs.FileMode, error) {
	b, err := os.ReadFile(u.file)
	mode := fs.FileMode(0o640)
	if errors.Is(err, os.ErrNotExist) {
		return &snmp.Users{}, mode, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("snmp.users_file: %w", err)
	}
	if fi, err := os.Stat(u.file); err == nil {
		mode = fi.Mode().Perm() &^ 0o007 // never readable by others: it holds keys
	}
	users, err := snmp.ParseUsers(b)
	if err != nil {
		return nil, 0, fmt.Errorf("snmp.users_file %s: %w", u.file, err)
	}
	return users, mode, nil
}

func (u *snmpUsers) list() ([]snmp.User, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	users, _, err := u.read()
	if err != nil {
		return nil, err
	}
	return users.Active(), nil
}

func (u *snmpUsers) change(fn func(*snmp.Users) error) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	users, mode, err := u.read()
	if err != nil {
		return "", err
	}
	if err := fn(users); err != nil {
		return "", fmt.Errorf("%w: %v", console.ErrSNMPUser, err)
	}
	var gid = -1
	if fi, err := os.Stat(u.file); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			gid = int(st.Gid)
		}
	}
	if err := console.WriteFileAtomic(u.file, users.Render(), mode); err != nil {
		return "", fmt.Errorf("snmp.users_file: %w", err)
	}
	if gid >= 0 {
		_ = os.Chown(u.file, -1, gid) // the owner's own group or a group it is in; else the file keeps the writer's
	}
	return u.reloadSnmpd(), nil
}

// reloadSnmpd sends snmpd SIGHUP and says what happened.
func (u *snmpUsers) reloadSnmpd() string {
	if u.pidFile == "" {
		return "written; snmpd reads it when reloaded (no snmp.snmpd_pid_file: a path unit or `systemctl reload snmpd`)"
	}
	b, err := os.ReadFile(u.pidFile)
	if err != nil {
		return "written, but snmpd was not reloaded: " + err.Error()
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Sprintf("written, but snmpd was not reloaded: %s holds no pid", u.pidFile)
	}
	// A stale pid file must not make the appliance signal another program.
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "snmpd" {
		return fmt.Sprintf("written, but snmpd was not reloaded: process %d (from %s) is not snmpd", pid, u.pidFile)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Sprintf("written, but snmpd (pid %d) was not reloaded: %v", pid, err)
	}
	return fmt.Sprintf("written; snmpd (pid %d) reloaded", pid)
}

func (u *snmpUsers) add(in snmp.UserInput) (string, error) {
	return u.change(func(users *snmp.Users) error { return users.Add(in, u.now()) })
}

func (u *snmpUsers) remove(name string) (string, error) {
	return u.change(func(users *snmp.Users) error { return users.Remove(name, u.now()) })
}
