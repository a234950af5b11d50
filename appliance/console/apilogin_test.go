package console

import (
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// POST /api/v1/login for an account with two-factor login: the right
// password without a code answers 401 code_required (the API's form of the
// login page's second step) and counts as no failure, however often; a
// wrong password or a wrong code answers 401 without it and counts; the
// password with a code logs in.
func TestAPILoginAsksForTheCode(t *testing.T) {
	tc := newTestConsole(t, func(o *Options) {
		o.LockoutAfter = 3
		o.LoginsPerMinute = 100
	})
	admin := tc.setup("admin", adminPW)
	if resp, _ := admin.post("/account/totp", url.Values{"csrf": {admin.csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("begin totp: %d", resp.StatusCode)
	}
	_, page := admin.get("/account")
	secret := regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(page)[1]
	if resp, _ := admin.post("/account/totp/confirm", url.Values{"csrf": {admin.csrf}, "code": {totpNow(t, secret)}}); resp.StatusCode != 200 {
		t.Fatalf("confirm totp: %d", resp.StatusCode)
	}

	login := func(body map[string]string) (int, map[string]any) {
		t.Helper()
		resp, m := tc.client().api("POST", "/api/v1/login", body)
		return resp.StatusCode, m
	}
	// More times than the lockout allows: still no lockout.
	for range 5 {
		code, m := login(map[string]string{"user": "admin", "password": adminPW})
		if code != http.StatusUnauthorized || m["code_required"] != true {
			t.Fatalf("password without code: %d %v, want 401 code_required", code, m)
		}
	}
	// The enrolment used this time step's code: the next step's is valid
	// (one step of skew) and not a replay.
	next, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	code, m := login(map[string]string{"user": "admin", "password": adminPW, "code": next})
	if code != http.StatusOK || m["csrf_token"] == "" || m["role"] != "admin" {
		t.Fatalf("password and code: %d %v", code, m)
	}
	// Failures count: a wrong password twice, then a wrong code, lock the
	// account (the third answers 423), and then the right password too.
	for range 2 {
		if code, m := login(map[string]string{"user": "admin", "password": "wrong password here"}); code != http.StatusUnauthorized || m["code_required"] != nil {
			t.Fatalf("wrong password: %d %v, want 401 without code_required", code, m)
		}
	}
	if code, m := login(map[string]string{"user": "admin", "password": adminPW, "code": "000000"}); code != http.StatusLocked || m["code_required"] != nil {
		t.Fatalf("wrong code, third failure: %d %v, want 423", code, m)
	}
	if code, m := login(map[string]string{"user": "admin", "password": adminPW}); code != http.StatusLocked || m["code_required"] != nil {
		t.Fatalf("locked account: %d %v, want 423", code, m)
	}
}
