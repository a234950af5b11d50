package scanners

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSignatureDatabase checks that the shipped signatures still describe
// the samples built here (an edited sample needs its line regenerated).
func TestSignatureDatabase(t *testing.T) {
	db := filepath.Join(testdata(t), "clamav")
	ndb, err := os.ReadFile(filepath.Join(db, "portcullis-test.ndb"))
	if err != nil {
		t.Fatal(err)
	}
	hsb, err := os.ReadFile(filepath.Join(db, "portcullis-test.hsb"))
	if err != nil {
		t.Fatal(err)
	}
	eicar := EICAR()
	if len(eicar) != 68 || fmt.Sprintf("%x", md5.Sum(eicar)) != "44d88612fea8a8f36de82e1278abb02f" {
		t.Fatal("EICAR() is not the standard 68-byte test file")
	}
	for _, want := range []string{
		"Portcullis.Test.EICAR:0:0:" + hex.EncodeToString(eicar) + "\n",
		"Portcullis.Test.Marker:0:*:" + hex.EncodeToString([]byte(Marker)) + "\n",
	} {
		if !strings.Contains(string(ndb), want) {
			t.Errorf("portcullis-test.ndb lacks %q", want)
		}
	}
	sample := HashSample(t)
	sum := sha256.Sum256(sample)
	if want := fmt.Sprintf("%x:%d:Portcullis.Test.HashSample\n", sum, len(sample)); string(hsb) != want {
		t.Errorf("portcullis-test.hsb is %q, want %q", hsb, want)
	}
}
