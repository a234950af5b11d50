package proxy

import (
	"bytes"
	"testing"

	"github.com/portcullis-gw/portcullis/policy"
)

// Files past pipeMinSize are checked off the copy loop. A card number near
// the end of a streamed 3 MiB body is still found and recorded before the
// last byte is delivered (the record held for it carries the detector and
// the file's SHA-256); the same bytes held by a block policy are replaced;
// a clean body of the same size arrives byte for byte.
func TestSessionLargeBodiesInspectedOffTheCopyLoop(t *testing.T) {
	sh := newSessionHarness(t, sessionPolicies, false, nil)
	clean := proseBody(3<<20, 1)
	card := bytes.Clone(clean)
	copy(card[len(card)-100:], " card "+testCard+" ")
	sh.origin.put("/files/watched-card.txt", "text/plain", "attachment", card)
	sh.origin.put("/files/secret-card.txt", "text/plain", "attachment", card)
	sh.origin.put("/files/secret-clean.txt", "text/plain", "attachment", clean)

	resp, body := sh.do(t, false, "GET", "https://origin.lab/files/watched-card.txt", nil)
	rec := sh.recs.find(t, "GET", "/files/watched-card.txt")
	if resp.StatusCode != 200 || !bytes.Equal(body, card) {
		t.Fatalf("monitored download: %d, %d bytes", resp.StatusCode, len(body))
	}
	if rec.Inspection != policy.InspectionDone || len(rec.Detectors) != 1 || rec.Detectors[0].ID != "credit_card" || rec.File == nil || rec.File.SHA256 != sha(card) || rec.File.Size != int64(len(card)) {
		t.Fatalf("monitored download record: %v %+v %+v", rec.Inspection, rec.Detectors, rec.File)
	}

	resp, body = sh.do(t, false, "GET", "https://origin.lab/files/secret-card.txt", nil)
	assertReplaced(t, resp, body, "secret-card.txt", "Card numbers may not leave.")
	if rec := sh.recs.find(t, "GET", "/files/secret-card.txt"); rec.File == nil || rec.File.SHA256 != sha(card) {
		t.Fatalf("held download record: %+v", rec.File)
	}

	resp, body = sh.do(t, false, "GET", "https://origin.lab/files/secret-clean.txt", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, clean) {
		t.Fatalf("clean held download: %d, %d bytes", resp.StatusCode, len(body))
	}
}
