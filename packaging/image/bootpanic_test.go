package image

import "testing"

// A panic before init (the kernel's own, seen under multi-threaded TCG) is
// told apart from one after init started, which the image could have
// caused and which no power cycle may hide.
func TestBootPanic(t *testing.T) {
	early := "[    3.438524] sched_clock: Marking stable (3400131298, 35444076)->(3477068837, -41493463)\n" +
		"[    3.440369] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n" +
		"[    3.441008] RIP: 0010:sched_clock_cpu+0x9/0x1d0\n" +
		"[    3.444098] Kernel panic - not syncing: Fatal exception in interrupt\n" +
		"[    5.103151] Shutting down cpus with NMI\n"
	const want = "Kernel panic - not syncing: Fatal exception in interrupt"
	if got := kernelPanic(early); got != want {
		t.Errorf("kernelPanic = %q, want %q", got, want)
	}
	if got := bootPanic(early); got != want {
		t.Errorf("bootPanic(early) = %q, want %q", got, want)
	}
	late := "[    4.100000] Run /init as init process\n" +
		"[   20.000000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n"
	if got := bootPanic(late); got != "" {
		t.Errorf("bootPanic(after init) = %q, want none", got)
	}
	if got := kernelPanic(late); got != "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100" {
		t.Errorf("kernelPanic(after init) = %q", got)
	}
	if got := bootPanic("[    1.0] Linux version 6.12\n[   13.5] Run /init as init process\n"); got != "" {
		t.Errorf("bootPanic(no panic) = %q", got)
	}
}
