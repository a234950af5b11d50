package console

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// AuditEntry is one admin action in the audit log.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"` // account name; what was typed for failed logins
	Role   Role      `json:"role,omitempty"`
	Source string    `json:"source"` // client address
	Action string    `json:"action"` // login, login_failed, lockout, logout, setup, ...
	Target string    `json:"target,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Audit actions.
const (
	auditSetup        = "setup"
	auditLogin        = "login"
	auditLoginFailed  = "login_failed"
	auditLockout      = "lockout"
	auditRateLimited  = "login_rate_limited"
	auditLogout       = "logout"
	auditTOTPEnrolled = "totp_enrolled"
	auditTOTPDisabled = "totp_disabled"
	auditPassword     = "password_changed"
	auditAccountAdd   = "account_created"
	auditAccountDel   = "account_removed"
	auditUnlock       = "account_unlocked"
	auditPolicySave   = "policy_saved"
	auditPolicyDelete = "policy_deleted"
	auditExport       = "export"
	auditCSRF         = "csrf_refused"
	auditForbidden    = "forbidden"
)

// auditLog appends JSON lines to audit.jsonl (0600), each one fsynced: an
// admin action the console acknowledged is on disk. Admin actions are rare,
// so the fsync per entry costs nothing that matters.
type auditLog struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openAuditLog(dir string) (*auditLog, error) {
	p := filepath.Join(dir, "audit.jsonl")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("console audit log: %w", err)
	}
	return &auditLog{path: p, f: f}, nil
}

// maxAuditField bounds what a client can make us store per field (a failed
// login's user name is whatever was typed).
const maxAuditField = 256

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (l *auditLog) add(e AuditEntry) error {
	e.Actor, e.Target, e.Detail = clip(e.Actor, maxAuditField), clip(e.Target, maxAuditField), clip(e.Detail, 4*maxAuditField)
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("console audit log: %w", err)
	}
	return l.f.Sync()
}

// AuditQuery filters the audit log.
type AuditQuery struct {
	Actor  string
	Action string
	Limit  int // default 200, at most 5000
}

// search returns matching entries, newest first.
func (l *auditLog) search(q AuditQuery) ([]AuditEntry, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 200
	}
	limit = min(limit, 5000)
	b, err := os.ReadFile(l.path)
	if err != nil {
		return nil, err
	}
	var out []AuditEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e AuditEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if q.Actor != "" && e.Actor != q.Actor || q.Action != "" && e.Action != q.Action {
			continue
		}
		out = append(out, e)
	}
	slices.Reverse(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (l *auditLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
