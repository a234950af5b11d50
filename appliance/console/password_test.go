package console

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// TestDummyHashMatchesTheParameters: an unknown user is checked against
// dummyHash so it takes as long as a wrong password; that holds only while
// the constant names the parameters hashPassword uses. No password matches
// it.
func TestDummyHashMatchesTheParameters(t *testing.T) {
	prefix := fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$", argon2.Version, argonMemory, argonTime, argonThreads)
	if !strings.HasPrefix(dummyHash, prefix) {
		t.Fatalf("dummyHash %q does not use hashPassword's parameters %q", dummyHash, prefix)
	}
	if real := hashPassword("x"); !strings.HasPrefix(real, prefix) {
		t.Fatalf("hashPassword gave %q", real)
	}
	for _, pw := range []string{"", "not a password of anyone's", "admin"} {
		if verifyPassword(dummyHash, pw) || verifyPassword("", pw) {
			t.Fatalf("the dummy hash accepted %q", pw)
		}
	}
	if !verifyPassword(hashPassword("right"), "right") || verifyPassword(hashPassword("right"), "wrong") {
		t.Fatal("hashPassword/verifyPassword do not round-trip")
	}
}

// TestArgonMemoryReturned: a password check's 19 MiB block goes back to the
// system instead of staying as idle heap (the appliance's resident set grew
// by it at every login).
func TestArgonMemoryReturned(t *testing.T) {
	hash := hashPassword("pw")
	verifyPassword(hash, "pw")
	var ms runtime.MemStats
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.ReadMemStats(&ms)
		retained := ms.HeapSys - ms.HeapReleased
		if retained < ms.HeapInuse+argonMemory<<10/2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after a login the heap retains %d KiB beyond the %d KiB in use (the argon2 block is %d KiB)",
				(retained-ms.HeapInuse)>>10, ms.HeapInuse>>10, argonMemory)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
