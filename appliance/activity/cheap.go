package activity

import (
	"sync"
	_ "unsafe" // go:linkname

	"modernc.org/memory"
)

// SQLite's C heap is modernc.org/libc's malloc: one modernc.org/memory
// Allocator behind a mutex, for the whole process. The allocator keeps
// what a burst freed: each size class its last empty 64 KiB page, and a
// pool of retired pages up to 4 MiB plus the high-water mark of the live
// heap, the newest 4 MiB of each class still committed. After 20,000
// events and ReleaseMemory's shrink, 579 live allocations sat in 193
// mappings (12.4 MiB); Trim left 13 mappings (0.8 MiB) and the process's
// anonymous RSS 4.6 MiB smaller (TestReleaseMemoryTrimsCHeap measures it).
//
// libc calls Trim only from its own tests and exports no way to reach it,
// so the allocator and its mutex are taken by name. That binds this file
// to libc's internals: TestCHeapTrimVersions fails when go.mod moves libc
// or memory off the versions read for this (the variable must still be a
// memory.Allocator that every malloc and free takes allocatorMu for), and
// a renamed symbol fails the link.
//
//go:linkname cAllocator modernc.org/libc.allocator
var cAllocator memory.Allocator

//go:linkname cAllocatorMu modernc.org/libc.allocatorMu
var cAllocatorMu sync.Mutex

// cHeapTrimChecked are the module versions the linkname above was checked
// against.
var cHeapTrimChecked = map[string]string{
	"modernc.org/libc":   "v1.80.1",
	"modernc.org/memory": "v1.12.1",
}

// trimCHeap returns the C allocator's empty pages to the OS. Pages with a
// live allocation stay; the next burst maps what it needs again (a page
// fault per 4 KiB touched, about a millisecond for the 4 MiB).
func trimCHeap() error {
	cAllocatorMu.Lock()
	defer cAllocatorMu.Unlock()
	return cAllocator.Trim()
}
