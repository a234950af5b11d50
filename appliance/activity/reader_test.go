package activity

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A Reader beside the running owner: it finds what the owner committed,
// searches while the owner keeps committing, and never writes.
func TestReaderSearchesBesideOwner(t *testing.T) {
	owner, path := openTest(t, Options{})
	for i := range 50 {
		if err := owner.Emit(sampleEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitWritten(t, owner, 50)
	r, err := OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	page, err := r.Search(Query{User: "user1@corp.example", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 10 {
		t.Fatalf("user1: %d events, want 10", len(page.Events))
	}
	page, err = r.Search(Query{Text: "report-37.pdf"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].FileName != "report-37.pdf" {
		t.Fatalf("full text report-37.pdf: %+v", page.Events)
	}
	// Searches while the owner commits more: none fails, and the reader's
	// view grows to include the new events.
	for i := 50; i < 250; i++ {
		if err := owner.Emit(sampleEvent(i)); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if _, err := r.Search(Query{App: "box"}); err != nil {
				t.Fatalf("search beside the owner's commits: %v", err)
			}
		}
	}
	waitWritten(t, owner, 250)
	page, err = r.Search(Query{Text: "report-241.pdf"})
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("an event committed after the reader opened: %+v, %v", page.Events, err)
	}
	// The reader holds no writer: alert summaries and writes are the
	// owner's alone (a read-only connection refuses them).
	if _, err := r.s.rdb.Exec("DELETE FROM events"); err == nil {
		t.Fatal("the reader's connection accepted a write")
	}
}

func TestOpenReaderRefusesWhatItCannotRead(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.db")
	if _, err := OpenReader(missing); err == nil || !strings.Contains(err.Error(), "no activity store at "+missing) {
		t.Fatalf("missing store: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("OpenReader created %s: %v", missing, err)
	}
	old := filepath.Join(dir, "old.db")
	db, err := sql.Open("sqlite", old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE events(seq INTEGER); PRAGMA user_version = 3"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := OpenReader(old); err == nil || !strings.Contains(err.Error(), "schema version 3, this build reads") {
		t.Fatalf("schema 3 store: %v", err)
	}
	if _, err := OpenReader(old + "?mode=rw"); err == nil || !strings.Contains(err.Error(), "contains '?'") {
		t.Fatalf("path with '?': %v", err)
	}
}
