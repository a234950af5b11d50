package activity

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// mountSmallFS mounts a tmpfs of size bytes on a fresh directory and
// unmounts it when the test ends (after any cleanup registered later, such
// as closing a store on it).
func mountSmallFS(t *testing.T, size string) string {
	t.Helper()
	lab.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount tmpfs %s: %v", dir, err)
		}
	})
	return dir
}

// fillFS writes path until the file system refuses with ENOSPC, so every
// byte left is taken.
func fillFS(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 512} {
		buf := make([]byte, chunk)
		for range 1 << 16 { // bounded: 64 GiB at most
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill %s: %v", path, err)
				}
				break
			}
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// openOnFS opens a store in dir with its Close registered for cleanup
// (before the unmount, since cleanups run last-in first-out).
func openOnFS(t *testing.T, dir string, opt Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(dir, "activity.db"), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// emitDurably emits n events and waits for each group; it returns their IDs.
func emitDurably(t *testing.T, s *Store, from, n int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, 0, n)
	tickets := make([]Ticket, 0, n)
	for i := from; i < from+n; i++ {
		ev := sampleEvent(i)
		ev.ID = uuid.Must(uuid.NewV7())
		tk, err := s.EmitDurable(ev)
		if err != nil {
			t.Fatalf("emit durable %d: %v", i, err)
		}
		ids, tickets = append(ids, ev.ID), append(tickets, tk)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tk := range tickets {
		if err := s.WaitDurable(ctx, tk); err != nil {
			t.Fatalf("wait durable: %v", err)
		}
	}
	return ids
}

// TestDiskFullAuditStrict: with the file system full the store turns
// unhealthy, Emit refuses, memory stays flat over a 200k-emit burst, and
// every event acknowledged durable before the outage is still there after
// it; once space returns the store recovers by itself.
func TestDiskFullAuditStrict(t *testing.T) {
	dir := mountSmallFS(t, "16m")
	s := openOnFS(t, dir, Options{Durability: AuditStrict, QueueSize: 4096, MaxBatch: 256})
	acked := emitDurably(t, s, 0, 500)

	filler := filepath.Join(dir, "filler")
	fillFS(t, filler)

	// Keep emitting until a group commit fails. Events acknowledged durable
	// meanwhile (the WAL may still have room) join the acked set; the ones
	// refused are simply not acknowledged.
	var pending []Ticket
	deadline := time.Now().Add(20 * time.Second)
	for i := 500; s.Stats().Healthy; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("store still healthy 20s after the disk filled (%+v)", s.Stats())
		}
		ev := sampleEvent(i)
		ev.ID = uuid.Must(uuid.NewV7())
		tk, err := s.EmitDurable(ev)
		if err != nil {
			if !errors.Is(err, ErrStoreUnavailable) {
				t.Fatalf("emit on a full disk: %v, want ErrStoreUnavailable", err)
			}
			continue
		}
		pending = append(pending, tk)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if s.WaitDurable(ctx, tk) == nil {
			acked = append(acked, ev.ID)
			pending = pending[:len(pending)-1]
		}
		cancel()
	}
	if err := s.Emit(sampleEvent(1)); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Emit on an unhealthy store: %v, want ErrStoreUnavailable", err)
	}
	if st := s.Stats(); st.WriteErrors == 0 || st.Healthy {
		t.Fatalf("stats during the outage: %+v", st)
	}

	before := heapInUse()
	refused := 0
	for i := range 200_000 {
		if err := s.Emit(sampleEvent(i)); err != nil {
			if !errors.Is(err, ErrStoreUnavailable) {
				t.Fatal(err)
			}
			refused++
		}
	}
	after := heapInUse()
	st := s.Stats()
	t.Logf("outage burst: 200000 emits, %d refused, heap %d → %d KiB, queue %d/%d",
		refused, before>>10, after>>10, st.QueueDepth, st.QueueCapacity)
	if refused < 200_000-st.QueueCapacity {
		t.Fatalf("only %d of 200000 emits refused with the disk full", refused)
	}
	if st.QueueDepth > st.QueueCapacity {
		t.Fatalf("queue depth %d over capacity %d", st.QueueDepth, st.QueueCapacity)
	}
	if after > before+32<<20 {
		t.Fatalf("heap grew from %d to %d bytes during the outage", before, after)
	}

	// Space returns: the writer's retry commits what it held and the store
	// turns healthy and takes events again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tk := range pending {
		if err := s.WaitDurable(ctx, tk); err != nil {
			t.Fatalf("event held during the outage: %v", err)
		}
	}
	for !s.Stats().Healthy {
		if ctx.Err() != nil {
			t.Fatal("store not healthy 20s after space returned")
		}
		time.Sleep(10 * time.Millisecond)
	}
	acked = append(acked, emitDurably(t, s, 300_000, 100)...)

	// Reopen: everything acknowledged is on disk.
	if err := s.Close(); err != nil {
		t.Fatalf("close after recovery: %v", err)
	}
	s2 := openOnFS(t, dir, Options{})
	assertStored(t, s2, acked)
}

// assertStored fails unless every id is in s.
func assertStored(t *testing.T, s *Store, ids []uuid.UUID) {
	t.Helper()
	have := map[uuid.UUID]bool{}
	for {
		evs, err := s.ReadAfter("check", 5000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			have[ev.ID] = true
		}
		if err := s.Advance("check", evs[len(evs)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
	missing := 0
	for _, id := range ids {
		if !have[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged events missing after reopen", missing, len(ids))
	}
	t.Logf("all %d acknowledged events stored (%d in the store)", len(ids), len(have))
}

// TestDiskFullBestEffort: with the file system full Emit never blocks nor
// fails, the overflow is dropped and counted, memory stays bounded by the
// queue, and the store catches up once space returns.
func TestDiskFullBestEffort(t *testing.T) {
	dir := mountSmallFS(t, "16m")
	const queue = 4096
	s := openOnFS(t, dir, Options{Durability: BestEffort, QueueSize: queue, MaxBatch: 256})
	acked := emitDurably(t, s, 0, 300)
	filler := filepath.Join(dir, "filler")
	fillFS(t, filler)

	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().Healthy {
		if time.Now().After(deadline) {
			t.Fatalf("store still healthy 20s after the disk filled (%+v)", s.Stats())
		}
		if err := s.Emit(sampleEvent(1)); err != nil {
			t.Fatalf("best-effort emit: %v", err)
		}
		time.Sleep(100 * time.Microsecond)
	}

	before := heapInUse()
	var slowest time.Duration
	start := s.Stats()
	for i := range 200_000 {
		t0 := time.Now()
		if err := s.Emit(sampleEvent(i)); err != nil {
			t.Fatalf("best-effort emit during the outage: %v", err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	after := heapInUse()
	st := s.Stats()
	dropped := st.Dropped - start.Dropped
	t.Logf("outage burst: 200000 emits, %d dropped, slowest emit %v, heap %d → %d KiB, queue %d/%d",
		dropped, slowest, before>>10, after>>10, st.QueueDepth, st.QueueCapacity)
	if dropped < 200_000-queue {
		t.Fatalf("dropped %d of 200000 with a full disk and a queue of %d", dropped, queue)
	}
	if st.QueueDepth > queue {
		t.Fatalf("queue depth %d over capacity %d", st.QueueDepth, queue)
	}
	// Blocking on the full disk would hold an Emit for the outage's whole
	// length; a loaded machine can deschedule one for a few hundred ms.
	if slowest > time.Second {
		t.Fatalf("a best-effort emit blocked for %v", slowest)
	}
	if after > before+32<<20 {
		t.Fatalf("heap grew from %d to %d bytes during the outage", before, after)
	}
	if _, err := s.EmitDurable(sampleEvent(2)); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("EmitDurable with a full queue: %v, want ErrStoreUnavailable", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		st := s.Stats()
		if st.Healthy && st.QueueDepth == 0 && st.Written == st.Queued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not catch up 20s after space returned: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	acked = append(acked, emitDurably(t, s, 400_000, 100)...)
	if err := s.Close(); err != nil {
		t.Fatalf("close after recovery: %v", err)
	}
	s2 := openOnFS(t, dir, Options{})
	assertStored(t, s2, acked)
}
