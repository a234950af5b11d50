package scanners

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Names clamd reports for the test signatures (unsigned databases get
// ".UNOFFICIAL" appended), and what StartClamd configures.
const (
	SigEICAR      = "Portcullis.Test.EICAR.UNOFFICIAL"
	SigMarker     = "Portcullis.Test.Marker.UNOFFICIAL"
	SigHashSample = "Portcullis.Test.HashSample.UNOFFICIAL"

	// Marker anywhere in a file matches SigMarker.
	Marker = "PORTCULLIS-TEST-MALWARE-MARKER"

	// ClamdStreamMaxLength is the StreamMaxLength of every clamd started here.
	ClamdStreamMaxLength = 4 << 20
)

// EICAR returns the 68-byte EICAR anti-virus test file. It is put together
// at run time so that no file of the repository is itself the test file.
func EICAR() []byte {
	return []byte(strings.Join([]string{`X5O!P%@AP[4\PZX54(P^)7CC)7}$`, "EICAR-STANDARD-ANTIVIRUS", "-TEST-FILE!$H+H*"}, ""))
}

// HashSample returns the file the SigHashSample hash signature lists.
func HashSample(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata(t), "samples", "hash-sample.txt"))
	if err != nil {
		t.Fatalf("scanners: %v", err)
	}
	return b
}

// testdata is proxy/scan/testdata in this module, found from the test's
// working directory (its package directory) upwards.
func testdata(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("scanners: %v", err)
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(mod), "module github.com/portcullis-gw/portcullis\n") {
			return filepath.Join(dir, "proxy", "scan", "testdata")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("scanners: not inside the portcullis module (no go.mod above the working directory)")
		}
		dir = parent
	}
}
