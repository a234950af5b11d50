// Command memprobe records where a process's memory is, for
// PORTCULLIS_BENCH_PROBE (BenchmarkLabKeepAlive runs it as "memprobe pid
// round moment" at the moments it reads the appliance's RSS). It writes, to
// the directory in MEMPROBE_DIR (default the current one):
//
//   - probe-<round>-<moment>.smaps: /proc/pid/smaps, every mapping's
//     resident and anonymous pages;
//   - probe-<round>-<moment>.pages: the executable's resident pages, one
//     "address permissions" line each (from /proc/pid/pagemap), to match
//     against its sections (readelf -S) and symbols (go tool nm -size);
//   - probe-exe: a copy of the executable, once.
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: memprobe pid round moment")
		os.Exit(2)
	}
	if err := probe(os.Args[1], os.Args[2], os.Args[3], os.Getenv("MEMPROBE_DIR")); err != nil {
		fmt.Fprintln(os.Stderr, "memprobe:", err)
		os.Exit(1)
	}
}

func probe(pid, round, moment, dir string) error {
	if _, err := strconv.Atoi(pid); err != nil {
		return fmt.Errorf("pid %q: not a number", pid)
	}
	proc := "/proc/" + pid
	exe, err := os.Readlink(proc + "/exe")
	if err != nil {
		return err
	}
	prefix := filepath.Join(dir, "probe-"+round+"-"+moment)
	smaps, err := os.ReadFile(proc + "/smaps")
	if err != nil {
		return err
	}
	if err := os.WriteFile(prefix+".smaps", smaps, 0o644); err != nil {
		return err
	}
	maps, err := os.ReadFile(proc + "/maps")
	if err != nil {
		return err
	}
	pagemap, err := os.Open(proc + "/pagemap")
	if err != nil {
		return err
	}
	defer pagemap.Close()
	out, err := os.Create(prefix + ".pages")
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	fmt.Fprintln(w, "# exe", exe)
	for line := range strings.Lines(string(maps)) {
		f := strings.Fields(line)
		if len(f) < 6 || f[5] != exe {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end < start {
			return fmt.Errorf("maps line %q: bad range", strings.TrimSpace(line))
		}
		n := (end - start) / 4096
		entries := make([]byte, n*8)
		if _, err := pagemap.ReadAt(entries, int64(start/4096*8)); err != nil {
			return fmt.Errorf("pagemap at %#x: %w", start, err)
		}
		for i := range n {
			if binary.LittleEndian.Uint64(entries[i*8:])&(1<<63) != 0 { // present
				fmt.Fprintf(w, "%x %s\n", start+i*4096, f[1])
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	copyPath := filepath.Join(dir, "probe-exe")
	if _, err := os.Stat(copyPath); err == nil {
		return nil
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		return err
	}
	return os.WriteFile(copyPath, b, 0o755)
}
