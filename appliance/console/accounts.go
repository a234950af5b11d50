package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// Role is what an account may do.
type Role string

const (
	// RoleAdmin reads and changes everything.
	RoleAdmin Role = "admin"
	// RoleAuditor reads everything, including the activity and audit logs,
	// and changes nothing.
	RoleAuditor Role = "auditor"
)

func (r Role) valid() bool { return r == RoleAdmin || r == RoleAuditor }

// Errors of the account store. Login failures are deliberately one error:
// the page never tells a wrong password from an unknown user.
var (
	ErrBadCredentials = errors.New("wrong user name, password or code")
	ErrLocked         = errors.New("account locked after too many failed logins")
	ErrAccountExists  = errors.New("account already exists")
	ErrNoAccount      = errors.New("no such account")
	ErrWeakPassword   = errors.New("password must be 12 to 256 characters")
	ErrBadUserName    = errors.New("user name must be 1 to 64 letters, digits or . _ @ -")
	ErrBadSetupToken  = errors.New("setup token is wrong or already used")
)

// argon2id parameters: OWASP's first recommendation (19 MiB, 2 passes, one
// lane), about 40 ms per hash on the lab machine, so a login costs the
// server little and a stolen accounts.json costs an attacker a lot.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// account is one console user as stored in accounts.json.
type account struct {
	Name         string `json:"name"`
	Role         Role   `json:"role"`
	PasswordHash string `json:"password_hash"` // PHC string, argon2id
	// TOTPSecret is the confirmed second factor (base32); TOTPPending is a
	// secret shown for enrolment and not yet confirmed with a code.
	TOTPSecret  string `json:"totp_secret,omitempty"`
	TOTPPending string `json:"totp_pending,omitempty"`
	// LastTOTPStep refuses a code twice in its 30 s window (replay).
	LastTOTPStep int64 `json:"last_totp_step,omitempty"`
	// RecoveryCodes are SHA-256 hex digests of the unused recovery codes
	// (random 50-bit codes: a fast hash is enough for them).
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
	// FailedLogins counts consecutive failures; LockedUntil is set when they
	// reach the limit. Both are reset by a successful login.
	FailedLogins int       `json:"failed_logins"`
	LockedUntil  time.Time `json:"locked_until,omitzero"`
	Created      time.Time `json:"created"`
	LastLogin    time.Time `json:"last_login,omitzero"`
}

// AccountInfo is what the console and the API show of an account: never a
// hash or a secret.
type AccountInfo struct {
	Name         string    `json:"name"`
	Role         Role      `json:"role"`
	TOTP         bool      `json:"totp"`
	FailedLogins int       `json:"failed_logins"`
	LockedUntil  time.Time `json:"locked_until,omitzero"`
	Created      time.Time `json:"created"`
	LastLogin    time.Time `json:"last_login,omitzero"`
}

func (a *account) info() AccountInfo {
	return AccountInfo{Name: a.Name, Role: a.Role, TOTP: a.TOTPSecret != "", FailedLogins: a.FailedLogins,
		LockedUntil: a.LockedUntil, Created: a.Created, LastLogin: a.LastLogin}
}

type accountFile struct {
	Version  int        `json:"version"`
	Accounts []*account `json:"accounts"`
}

// accounts is the account store: one JSON file, rewritten atomically on
// every change. Changes are rare (logins, failures), so simplicity wins
// over a database.
type accounts struct {
	mu      sync.Mutex
	dir     string
	byName  map[string]*account
	lockN   int
	lockFor time.Duration
	now     func() time.Time
}

func openAccounts(dir string, lockN int, lockFor time.Duration, now func() time.Time) (*accounts, error) {
	s := &accounts{dir: dir, byName: map[string]*account{}, lockN: lockN, lockFor: lockFor, now: now}
	b, err := os.ReadFile(s.path())
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("console accounts: %w", err)
	}
	var f accountFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("console accounts %s: %w", s.path(), err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("console accounts %s: version %d is not 1", s.path(), f.Version)
	}
	for _, a := range f.Accounts {
		s.byName[a.Name] = a
	}
	return s, nil
}

func (s *accounts) path() string { return filepath.Join(s.dir, "accounts.json") }

// save writes every account; called with mu held.
func (s *accounts) save() error {
	f := accountFile{Version: 1}
	for _, a := range s.byName {
		f.Accounts = append(f.Accounts, a)
	}
	slices.SortFunc(f.Accounts, func(a, b *account) int { return strings.Compare(a.Name, b.Name) })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path(), b, 0o600)
}

func (s *accounts) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byName) == 0
}

func (s *accounts) list() []AccountInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AccountInfo, 0, len(s.byName))
	for _, a := range s.byName {
		out = append(out, a.info())
	}
	slices.SortFunc(out, func(a, b AccountInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (s *accounts) get(name string) (AccountInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byName[name]
	if !ok {
		return AccountInfo{}, false
	}
	return a.info(), true
}

func validUserName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@-", r)) {
			return false
		}
	}
	return true
}

func validPassword(p string) bool { return len([]rune(p)) >= 12 && len(p) <= 256 }

// create adds an account.
func (s *accounts) create(name, password string, role Role) error {
	if !validUserName(name) {
		return ErrBadUserName
	}
	if !validPassword(password) {
		return ErrWeakPassword
	}
	if !role.valid() {
		return fmt.Errorf("role %q: use admin or auditor", role)
	}
	hash := hashPassword(password)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byName[name]; ok {
		return ErrAccountExists
	}
	s.byName[name] = &account{Name: name, Role: role, PasswordHash: hash, Created: s.now().UTC()}
	if err := s.save(); err != nil {
		delete(s.byName, name)
		return err
	}
	return nil
}

// loginResult says what a correct password still needs.
type loginResult struct {
	Role     Role
	NeedTOTP bool
	// Locked is set when this failure locked the account: the caller ends
	// its sessions.
	Locked bool
}

// checkPassword verifies a password. A locked account is refused even with
// the right password; a wrong one counts towards the lockout. An unknown
// user costs the same hash as a known one, so timing tells nothing.
func (s *accounts) checkPassword(name, password string) (loginResult, error) {
	s.mu.Lock()
	a, ok := s.byName[name]
	var hash string
	if ok {
		hash = a.PasswordHash
	}
	s.mu.Unlock()
	match := verifyPassword(hash, password) && ok
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		return loginResult{}, ErrBadCredentials
	}
	if now := s.now(); now.Before(a.LockedUntil) {
		return loginResult{}, ErrLocked
	}
	if !match {
		return s.fail(a)
	}
	if a.TOTPSecret != "" {
		return loginResult{Role: a.Role, NeedTOTP: true}, nil
	}
	return loginResult{Role: a.Role}, s.succeed(a)
}

// fail counts a failure and locks the account at the limit; mu held.
func (s *accounts) fail(a *account) (loginResult, error) {
	a.FailedLogins++
	var res loginResult
	if s.lockN > 0 && a.FailedLogins >= s.lockN {
		a.LockedUntil = s.now().Add(s.lockFor).UTC()
		a.FailedLogins = 0
		res.Locked = true
	}
	if err := s.save(); err != nil {
		return res, err
	}
	if res.Locked {
		return res, ErrLocked
	}
	return res, ErrBadCredentials
}

func (s *accounts) succeed(a *account) error {
	a.FailedLogins, a.LockedUntil, a.LastLogin = 0, time.Time{}, s.now().UTC()
	return s.save()
}

// checkSecondFactor verifies a TOTP code or a recovery code (which is then
// used up) for an account whose password was just verified.
func (s *accounts) checkSecondFactor(name, code string) (loginResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byName[name]
	if !ok || a.TOTPSecret == "" {
		return loginResult{}, ErrBadCredentials
	}
	now := s.now()
	if now.Before(a.LockedUntil) {
		return loginResult{}, ErrLocked
	}
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if step, ok := validateTOTP(a.TOTPSecret, code, now); ok && step > a.LastTOTPStep {
		a.LastTOTPStep = step
		return loginResult{Role: a.Role}, s.succeed(a)
	}
	if i := matchRecovery(a.RecoveryCodes, code); i >= 0 {
		a.RecoveryCodes = slices.Delete(a.RecoveryCodes, i, i+1)
		return loginResult{Role: a.Role}, s.succeed(a)
	}
	return s.fail(a)
}

// beginTOTP stores a new pending secret for the account and returns it.
func (s *accounts) beginTOTP(name string) (secret string, err error) {
	secret = newTOTPSecret()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byName[name]
	if !ok {
		return "", ErrNoAccount
	}
	a.TOTPPending = secret
	return secret, s.save()
}

func (s *accounts) pendingTOTP(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.byName[name]; ok {
		return a.TOTPPending
	}
	return ""
}

// confirmTOTP turns the pending secret into the account's second factor
// when code is valid for it, and returns fresh recovery codes (shown once).
func (s *accounts) confirmTOTP(name, code string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byName[name]
	if !ok || a.TOTPPending == "" {
		return nil, ErrNoAccount
	}
	step, ok := validateTOTP(a.TOTPPending, strings.TrimSpace(code), s.now())
	if !ok {
		return nil, ErrBadCredentials
	}
	codes, hashes := newRecoveryCodes(10)
	a.TOTPSecret, a.TOTPPending, a.LastTOTPStep, a.RecoveryCodes = a.TOTPPending, "", step, hashes
	return codes, s.save()
}

func (s *accounts) disableTOTP(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byName[name]
	if !ok {
		return ErrNoAccount
	}
	a.TOTPSecret, a.TOTPPending, a.RecoveryCodes = "", "", nil
	return s.save()
}

// setPassword changes an account's password.
func (s *accounts) setPassword(name, password string) error {
	if !validPassword(password) {
		return ErrWeakPassword
	}
	hash := hashPassword(password)
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byName[name]
	if !ok {
		return ErrNoAccount
	}
	a.PasswordHash = hash
	return s.save()
}

// unlock clears an account's lockout (an admin's action).
func (s *accounts) unlock(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byName[name]
	if !ok {
		return ErrNoAccount
	}
	a.FailedLogins, a.LockedUntil = 0, time.Time{}
	return s.save()
}

func (s *accounts) remove(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byName[name]
	if !ok {
		return ErrNoAccount
	}
	if a.Role == RoleAdmin {
		admins := 0
		for _, b := range s.byName {
			if b.Role == RoleAdmin {
				admins++
			}
		}
		if admins == 1 {
			return errors.New("the last admin account cannot be removed")
		}
	}
	delete(s.byName, name)
	if err := s.save(); err != nil {
		s.byName[name] = a
		return err
	}
	return nil
}

// hashPassword returns the PHC string of an argon2id hash with a random salt.
func hashPassword(password string) string {
	salt := make([]byte, 16)
	copy(salt, decodeHexToken(randomToken(16)))
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	releaseArgonMemory()
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// dummyHash is verified against when the user does not exist, so that an
// unknown name takes as long as a wrong password. It is the hash of 32
// random bytes nobody kept, with this package's parameters. A constant, not
// hashed at start-up: that cost every process importing the console (the
// appliance and each CLI command) 50 ms and a 19 MiB argon2 block the Go
// runtime then held, idle, for the process's life (measured: 23 of the
// appliance's 34 MiB of anonymous memory at rest).
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$mkHo+/zwrfAk4kQA6l4u+A$DQhnXGUkBNs5dLtU2928glR9nY5Cymi1K+km7Cl7wew"

// verifyPassword checks password against a PHC argon2id string, with the
// parameters the string names (so they can be raised later).
func verifyPassword(phc, password string) bool {
	if phc == "" {
		phc = dummyHash
	}
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 1<<21 || t > 16 || p == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	releaseArgonMemory()
	return subtle.ConstantTimeCompare(got, want) == 1
}

// argonReleasing is set while a release is pending: logins at once share it.
var argonReleasing atomic.Bool

// releaseArgonMemory hands the memory of the argon2 block just freed (m KiB,
// 19 MiB by default) back to the system. The runtime would keep it as idle
// heap: a login would leave the appliance's resident set 19 MiB larger for
// hours. It costs one garbage collection per login, off the login's path.
func releaseArgonMemory() {
	if argonReleasing.CompareAndSwap(false, true) {
		go func() {
			debug.FreeOSMemory()
			argonReleasing.Store(false)
		}()
	}
}

func decodeHexToken(s string) []byte { b, _ := hex.DecodeString(s); return b }

// newRecoveryCodes returns n codes as the user sees them (xxxxx-xxxxx,
// base32) and their digests as stored.
func newRecoveryCodes(n int) (codes, hashes []string) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for range n {
		c := strings.ToLower(enc.EncodeToString(decodeHexToken(randomToken(7))))[:10]
		c = c[:5] + "-" + c[5:]
		codes = append(codes, c)
		hashes = append(hashes, recoveryDigest(c))
	}
	return codes, hashes
}

func recoveryDigest(code string) string {
	code = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(code), "-", ""))
	sum := sha256.Sum256([]byte("portcullis-recovery:" + code))
	return hex.EncodeToString(sum[:])
}

// matchRecovery returns the index of code among the digests, or -1; every
// digest is compared so the time does not depend on the position.
func matchRecovery(digests []string, code string) int {
	if code == "" {
		return -1
	}
	d := recoveryDigest(code)
	found := -1
	for i, h := range digests {
		if subtle.ConstantTimeCompare([]byte(h), []byte(d)) == 1 {
			found = i
		}
	}
	return found
}
