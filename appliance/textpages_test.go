package appliance

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestReleasableExeMappings(t *testing.T) {
	smaps := `00400000-015b9000 r-xp 00000000 fd:01 1234 /usr/bin/portcullis
Size:              18148 kB
Rss:               15076 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
015b9000-027f3000 r--p 011b9000 fd:01 1234 /usr/bin/portcullis
Rss:               15080 kB
Anonymous:             0 kB
027f3000-02981000 rw-p 023f3000 fd:01 1234 /usr/bin/portcullis
Rss:                1016 kB
Anonymous:           300 kB
02981000-02990000 r-xp 02581000 fd:01 1234 /usr/bin/portcullis
Rss:                  64 kB
Anonymous:             4 kB
7ff4e4ec5000-7ff4e501b000 r-xp 00028000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 876 kB
Anonymous:             0 kB
7ff4e5000000-7ff4e5001000 r-xp 00000000 fd:02 1234 /other/fs/same-inode
Rss:                   4 kB
Anonymous:             0 kB
7ff494d80000-7ff494f00000 rw-p 00000000 00:00 0
Rss:                 664 kB
Anonymous:           664 kB
`
	got, err := releasableExeMappings([]byte(smaps), 0xfd, 0x01, 1234)
	if err != nil {
		t.Fatal(err)
	}
	// Text and rodata; not the data segment (writable), not the text
	// mapping with a copied-on-write page (a breakpoint), not libc, not
	// another device's inode 1234.
	want := []exeMapping{{0x400000, 0x15b9000, 15076}, {0x15b9000, 0x27f3000, 15080}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"zzz-123 r-xp 0 fd:01 1 /x\n", "00400000 r-xp 0 fd:01 1 /x\n", "00500000-00400000 r-xp 0 fd:01 1 /x\n", "00400000-00500000 r-xp\n"} {
		if _, err := releasableExeMappings([]byte(bad), 0xfd, 1, 1); err == nil || !strings.Contains(err.Error(), "smaps line 1") {
			t.Errorf("%q: err %v, want one naming line 1", bad, err)
		}
	}
}

// The test binary's own start-up pages: released, they leave RssFile, and
// the code keeps running (what it uses faults back in).
func TestReleaseStartupPagesShrinksFileRSS(t *testing.T) {
	_, before := rssParts(t, os.Getpid())
	before >>= 10
	kib, err := releaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	_, after := rssParts(t, os.Getpid())
	after >>= 10
	if kib < 1024 {
		t.Fatalf("released %d KiB of the executable, want at least 1 MiB (RssFile %d KiB before)", kib, before)
	}
	if before-after < kib/2 {
		t.Fatalf("RssFile %d KiB before, %d KiB after releasing %d KiB: not given back", before, after, kib)
	}
	// Code and read-only data used before still work after.
	if s := strconv.Itoa(12345) + strings.Repeat("x", 2); s != "12345xx" {
		t.Fatalf("got %q", s)
	}
	t.Logf("RssFile %d KiB before, %d KiB after; %d KiB released", before, after, kib)
}
