package snmp

import (
	"crypto/sha1"
	"encoding/hex"
	"hash"
	"strings"
	"testing"
	"time"
)

// RFC 3414 A.3.2: the SHA-1 master key of "maplesyrup". The same
// derivation with SHA-256 and SHA-512 is what snmpd does for those
// (RFC 7860); appliance/snmpuserswire_test.go checks the keys against a
// real snmpd.
func TestPassphraseKey(t *testing.T) {
	if got := hex.EncodeToString(PassphraseKey(sha1.New, "maplesyrup")); got != "9fb5cc0381497b3793528939ff788d5d79145211" {
		t.Errorf("Ku(maplesyrup) = %s", got)
	}
}

func TestUsersFragment(t *testing.T) {
	now := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	u, err := ParseUsers(nil)
	if err != nil {
		t.Fatal(err)
	}
	in := UserInput{Name: "ops", Auth: AuthSHA512, Priv: PrivAES, View: ViewPortcullis, AuthPassphrase: "auth-passphrase-1", PrivPassphrase: "priv-passphrase-1"}
	if err := u.Add(in, now); err != nil {
		t.Fatal(err)
	}
	if err := u.Add(in, now); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second add: %v", err)
	}
	for _, bad := range []UserInput{
		{Name: "x", Auth: AuthSHA256, Priv: PrivAES, View: ViewAll, AuthPassphrase: "short", PrivPassphrase: "long-enough"},
		{Name: "bad name", Auth: "MD5", Priv: "DES", View: "root", AuthPassphrase: "long-enough", PrivPassphrase: "line\nbreak!"},
	} {
		if err := u.Add(bad, now); err == nil {
			t.Errorf("accepted %+v", bad)
		} else {
			t.Log(err)
		}
	}
	if err := u.Add(UserInput{Name: "nms", Auth: AuthSHA256, Priv: PrivAES, View: ViewAll, AuthPassphrase: "nms-auth-pass", PrivPassphrase: "nms-priv-pass"}, now); err != nil {
		t.Fatal(err)
	}
	text := string(u.Render())
	for _, want := range []string{
		"createUser ops SHA-512 -m 0x" + hex.EncodeToString(PassphraseKey(authHashMust(AuthSHA512), "auth-passphrase-1")),
		"rouser -s usm ops priv .1.3.6.1.4.1.32473\n", "rouser -s usm nms priv\n", "# user ops SHA-512 AES portcullis 2026-12-02T05:00:00Z",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("fragment lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "passphrase-1") || strings.Contains(text, "nms-auth-pass") {
		t.Errorf("a passphrase is in the fragment:\n%s", text)
	}
	if err := u.Remove("ops", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := u.Remove("ops", now); err == nil {
		t.Error("removed twice")
	}
	back, err := ParseUsers(u.Render())
	if err != nil {
		t.Fatalf("%v\n%s", err, u.Render())
	}
	if act := back.Active(); len(act) != 1 || act[0].Name != "nms" || act[0].View != ViewAll || !act[0].Added.Equal(now) {
		t.Errorf("active after the round trip: %+v", act)
	}
	text = string(back.Render())
	if !strings.Contains(text, "# removed ops 2026-12-02T06:00:00Z\ncreateUser ops SHA-512 -m 0x") || strings.Contains(text, "rouser -s usm ops") ||
		strings.Contains(text, hex.EncodeToString(PassphraseKey(authHashMust(AuthSHA512), "auth-passphrase-1"))) {
		t.Errorf("tombstone:\n%s", text)
	}
	// The name can be taken again, with new keys.
	in.AuthPassphrase, in.PrivPassphrase = "another-auth-1", "another-priv-1"
	if err := back.Add(in, now); err != nil {
		t.Fatal(err)
	}
	if len(back.Active()) != 2 {
		t.Errorf("re-added: %+v", back.Active())
	}
	if _, err := ParseUsers([]byte("rocommunity public\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("foreign line: %v", err)
	}
}

func authHashMust(a string) func() hash.Hash {
	h, err := authHash(a)
	if err != nil {
		panic(err)
	}
	return h
}
