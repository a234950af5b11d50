package appliance

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Start-up touches code and data that serving never touches again: every
// package's init (protobuf descriptors, parsers' tables, cobra, the BPF
// loader, config validation). The kernel maps file pages around each
// fault (fault-around, 64 KiB), so one init per package left ~31 MiB of the
// executable's ~37 MiB of text, rodata and pclntab mapped before the first
// request; the request path itself needs a few MiB of it. Those pages stay
// mapped for the life of the process, and the kernel's reclaim protects
// mapped executable pages (a referenced VM_EXEC page is kept active), so
// start-up-only code is kept in memory as if it were hot.
//
// Once the appliance is serving, releaseStartupPages unmaps the executable's
// read-only segments (MADV_DONTNEED on the private, never-written text and
// rodata mappings): the bytes stay in the page cache, and what serving
// touches comes back through minor faults, around a microsecond each, a few
// hundred of them on the first requests. What stays resident is then what
// the process uses. The writable data segment is never touched, nor a
// mapping that holds anonymous (copied-on-write) pages: a debugger's
// breakpoint or a uprobe lives in such a page, and dropping it would
// silently remove the probe.

// exeMapping is one mapping of the executable that may be released.
type exeMapping struct {
	start, end uint64
	rssKiB     int64
}

// releasableExeMappings parses smaps (the text of /proc/self/smaps) and
// returns the mappings of the file with device major:minor and inode ino
// that are private, not writable, readable, and hold no anonymous page.
func releasableExeMappings(smaps []byte, major, minor uint32, ino uint64) ([]exeMapping, error) {
	var out []exeMapping
	var cur *exeMapping
	keep := false
	dev := fmt.Sprintf("%02x:%02x", major, minor)
	flush := func() {
		if cur != nil && keep {
			out = append(out, *cur)
		}
		cur, keep = nil, false
	}
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if strings.HasSuffix(f[0], ":") {
			// A field of the current mapping ("Rss:   123 kB").
			if cur == nil || len(f) < 2 {
				continue
			}
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				continue // VmFlags and the like
			}
			switch f[0] {
			case "Rss:":
				cur.rssKiB = n
			case "Anonymous:":
				if n != 0 {
					keep = false
				}
			}
			continue
		}
		// A mapping's header: "start-end perms offset dev inode [path]".
		flush()
		if len(f) < 5 {
			return nil, fmt.Errorf("smaps line %d: %q is neither a mapping nor a field", line, sc.Text())
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("smaps line %d: address range %q", line, f[0])
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("smaps line %d: address range %q", line, f[0])
		}
		cur = &exeMapping{start: start, end: end}
		perms := f[1]
		inode, _ := strconv.ParseUint(f[4], 10, 64)
		keep = len(perms) == 4 && perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p' &&
			f[3] == dev && inode == ino
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("smaps: %w", err)
	}
	flush()
	return out, nil
}

// releaseStartupPages unmaps the executable's read-only pages (see above)
// and says how many KiB were resident in them.
func releaseStartupPages() (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("stat own executable: %w", err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	maps, err := releasableExeMappings(smaps, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	if err != nil {
		return 0, err
	}
	var kib int64
	for _, m := range maps {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED); errno != 0 {
			return kib, fmt.Errorf("madvise %#x-%#x: %w", m.start, m.end, errno)
		}
		kib += m.rssKiB
	}
	return kib, nil
}
