package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// loginCookie carries the login form's CSRF token (double submit): there
// is no session yet to bind it to, and SameSite=Strict plus the same-site
// check keep other sites from posting a login of their own choosing.
const loginCookie = "__Host-portcullis-login"

func (c *Console) loginFormToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(loginCookie); err == nil && len(ck.Value) == 48 {
		return ck.Value
	}
	tok := randomToken(24)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	return tok
}

func checkLoginForm(r *http.Request) bool {
	ck, err := r.Cookie(loginCookie)
	return err == nil && sameSite(r) && constantEqual(r.PostFormValue("csrf"), ck.Value)
}

type loginView struct {
	User    string
	Pending string // second-factor step
	SSO     bool   // single sign-on offered
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.needsSetup() {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	if c.sessionOf(r) != nil {
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
		return
	}
	c.render(w, r, nil, "login", view{Title: "Log in", CSRF: c.loginFormToken(w, r), D: loginView{SSO: c.oidc != nil}})
}

func (c *Console) loginError(w http.ResponseWriter, r *http.Request, status int, msg string, lv loginView) {
	lv.SSO = c.oidc != nil && lv.Pending == ""
	w.WriteHeader(status)
	c.render(w, r, nil, "login", view{Title: "Log in", CSRF: c.loginFormToken(w, r), Error: msg, D: lv})
}

// attempt applies the per-source limit to one login step.
func (c *Console) attempt(w http.ResponseWriter, r *http.Request, user string) bool {
	if c.limiter.allow(r.RemoteAddr) {
		return true
	}
	c.record(r, nil, auditRateLimited, user, "")
	w.Header().Set("Retry-After", "60")
	return false
}

func (c *Console) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	user := strings.TrimSpace(r.PostFormValue("user"))
	if !checkLoginForm(r) {
		c.loginError(w, r, http.StatusForbidden, "The form expired. Try again.", loginView{User: user})
		return
	}
	if !c.attempt(w, r, user) {
		c.loginError(w, r, http.StatusTooManyRequests, "Too many login attempts from your address. Wait a minute.", loginView{User: user})
		return
	}
	res, err := c.passwordStep(r, user, r.PostFormValue("password"))
	if err != nil {
		c.loginError(w, r, loginStatus(err), loginMessage(err), loginView{User: user})
		return
	}
	if res.NeedTOTP {
		c.render(w, r, nil, "login", view{Title: "Log in", CSRF: c.loginFormToken(w, r), D: loginView{User: user, Pending: c.pending.add(user)}})
		return
	}
	c.startSession(w, r, user, res.Role)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

func loginStatus(err error) int {
	if errors.Is(err, ErrLocked) {
		return http.StatusLocked
	}
	return http.StatusUnauthorized
}

func loginMessage(err error) string {
	if errors.Is(err, ErrLocked) {
		return "This account is locked after too many failed logins. Try again later or ask another admin to unlock it."
	}
	return "Wrong user name, password or code."
}

// passwordStep checks the password and records the outcome; a failure
// that locks the account ends its sessions.
func (c *Console) passwordStep(r *http.Request, user, password string) (loginResult, error) {
	res, err := c.accounts.checkPassword(user, password)
	c.noteFailure(r, user, res, err)
	return res, err
}

func (c *Console) noteFailure(r *http.Request, user string, res loginResult, err error) {
	if err == nil {
		return
	}
	c.record(r, &session{User: user}, auditLoginFailed, user, err.Error())
	if res.Locked {
		n := c.sessions.endUser(user)
		c.record(r, &session{User: user}, auditLockout, user, "account locked; open sessions ended: "+strconv.Itoa(n))
	}
}

func (c *Console) loginCode(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if !checkLoginForm(r) {
		c.loginError(w, r, http.StatusForbidden, "The form expired. Try again.", loginView{})
		return
	}
	user, ok := c.pending.take(r.PostFormValue("pending"))
	if !ok {
		c.loginError(w, r, http.StatusUnauthorized, "The login expired. Enter your password again.", loginView{})
		return
	}
	if !c.attempt(w, r, user) {
		c.loginError(w, r, http.StatusTooManyRequests, "Too many login attempts from your address. Wait a minute.", loginView{User: user})
		return
	}
	res, err := c.accounts.checkSecondFactor(user, r.PostFormValue("code"))
	c.noteFailure(r, user, res, err)
	if err != nil {
		lv := loginView{User: user}
		if !errors.Is(err, ErrLocked) {
			lv.Pending = c.pending.add(user)
		}
		c.loginError(w, r, loginStatus(err), loginMessage(err), lv)
		return
	}
	c.startSession(w, r, user, res.Role)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

func (c *Console) startSession(w http.ResponseWriter, r *http.Request, user string, role Role) *session {
	// A session cookie the browser already had is dropped with its session:
	// a login always yields a new token.
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.sessions.end(tokenKey(ck.Value))
	}
	token, s := c.sessions.create(user, role, clientAddr(r))
	c.setSessionCookie(w, token)
	c.record(r, s, auditLogin, user, "")
	return s
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.end(s.key)
	clearSessionCookie(w)
	c.record(r, s, auditLogout, s.User, "")
	if isAPI(r) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// apiLogin is the login for API clients (the CLI): JSON in, the session
// cookie and the CSRF token out.
func (c *Console) apiLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	var in struct{ User, Password, Code string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		apiError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if !sameSite(r) {
		apiError(w, http.StatusForbidden, "cross-site login refused")
		return
	}
	if !c.attempt(w, r, in.User) {
		apiError(w, http.StatusTooManyRequests, "too many login attempts from this address")
		return
	}
	res, err := c.passwordStep(r, in.User, in.Password)
	if err == nil && res.NeedTOTP && strings.TrimSpace(in.Code) == "" {
		// The form's second step, for API clients: the password was right
		// (as the login page shows by asking for the code), nothing counts
		// as a failure, and the client asks its user for the code.
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "this account logs in with a TOTP or recovery code: send it as code",
			"code_required": true})
		return
	}
	if err == nil && res.NeedTOTP {
		res, err = c.accounts.checkSecondFactor(in.User, in.Code)
		c.noteFailure(r, in.User, res, err)
	}
	if err != nil {
		apiError(w, loginStatus(err), loginMessage(err))
		return
	}
	s := c.startSession(w, r, in.User, res.Role)
	writeJSON(w, http.StatusOK, sessionInfo(s))
}

type sessionJSON struct {
	User string `json:"user"`
	Role Role   `json:"role"`
	CSRF string `json:"csrf_token"`
}

func sessionInfo(s *session) sessionJSON {
	return sessionJSON{User: s.User, Role: s.Role, CSRF: s.CSRF}
}

func (c *Console) apiSession(w http.ResponseWriter, _ *http.Request, s *session) {
	writeJSON(w, http.StatusOK, sessionInfo(s))
}

// Setup: the first admin, created with the one-time token.

func (c *Console) setupPage(w http.ResponseWriter, r *http.Request) {
	if !c.needsSetup() {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	c.render(w, r, nil, "setup", view{Title: "Set up the console", CSRF: c.loginFormToken(w, r)})
}

func (c *Console) setupSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	fail := func(status int, msg string) {
		w.WriteHeader(status)
		c.render(w, r, nil, "setup", view{Title: "Set up the console", CSRF: c.loginFormToken(w, r), Error: msg})
	}
	if !checkLoginForm(r) {
		fail(http.StatusForbidden, "The form expired. Try again.")
		return
	}
	if !c.attempt(w, r, "setup") {
		fail(http.StatusTooManyRequests, "Too many attempts from your address. Wait a minute.")
		return
	}
	user, pw := strings.TrimSpace(r.PostFormValue("user")), r.PostFormValue("password")
	if pw != r.PostFormValue("password2") {
		fail(http.StatusBadRequest, "The two passwords differ.")
		return
	}
	c.setupMu.Lock()
	token := c.setupToken
	if token == "" || !constantEqual(strings.TrimSpace(r.PostFormValue("token")), token) {
		c.setupMu.Unlock()
		c.record(r, &session{User: user}, auditLoginFailed, "setup", ErrBadSetupToken.Error())
		fail(http.StatusUnauthorized, "The setup token is wrong or was used already.")
		return
	}
	if err := c.accounts.create(user, pw, RoleAdmin); err != nil {
		c.setupMu.Unlock()
		fail(http.StatusBadRequest, err.Error())
		return
	}
	c.setupToken = ""
	_, _ = ensureSetupToken(c.dir, true) // removes the file
	c.setupMu.Unlock()
	c.record(r, &session{User: user, Role: RoleAdmin}, auditSetup, user, "first admin created with the setup token")
	c.startSession(w, r, user, RoleAdmin)
	http.Redirect(w, r, "/account?welcome=1", http.StatusSeeOther)
}
