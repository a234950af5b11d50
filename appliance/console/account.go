package console

import (
	"html/template"
	"net/http"
	"strings"
)

type accountView struct {
	Info          AccountInfo
	Welcome       bool
	PendingSecret string       // TOTP enrolment in progress
	PendingURI    template.URL // otpauth:// for authenticator apps (built here, trusted)
	RecoveryCodes []string     // shown once, right after enrolment
}

func (c *Console) accountView(r *http.Request, s *session) accountView {
	info, _ := c.accounts.get(s.User)
	av := accountView{Info: info, Welcome: r.URL.Query().Get("welcome") != ""}
	if sec := c.accounts.pendingTOTP(s.User); sec != "" && !info.TOTP {
		av.PendingSecret, av.PendingURI = sec, template.URL(totpURI(sec, s.User)) // #nosec: our own URI
	}
	return av
}

func (c *Console) accountPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, s, "account", view{Title: "Your account", Nav: "account", D: c.accountView(r, s)})
}

func (c *Console) accountTOTPBegin(w http.ResponseWriter, r *http.Request, s *session) {
	if _, err := c.accounts.beginTOTP(s.User); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, "/account#totp", http.StatusSeeOther)
}

func (c *Console) accountTOTPConfirm(w http.ResponseWriter, r *http.Request, s *session) {
	codes, err := c.accounts.confirmTOTP(s.User, r.PostFormValue("code"))
	av := c.accountView(r, s)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		c.render(w, r, s, "account", view{Title: "Your account", Nav: "account", Error: "That code is not valid for the secret shown. Check the clock of the device and try the next code.", D: av})
		return
	}
	c.record(r, s, auditTOTPEnrolled, s.User, "")
	av.Info, _ = c.accounts.get(s.User)
	av.PendingSecret, av.PendingURI, av.RecoveryCodes = "", "", codes
	c.render(w, r, s, "account", view{Title: "Your account", Nav: "account", Flash: "Two-factor login is on.", D: av})
}

func (c *Console) accountTOTPDisable(w http.ResponseWriter, r *http.Request, s *session) {
	if _, err := c.accounts.checkPassword(s.User, r.PostFormValue("password")); err != nil {
		c.noteFailure(r, s.User, loginResult{}, err)
		w.WriteHeader(http.StatusUnauthorized)
		c.render(w, r, s, "account", view{Title: "Your account", Nav: "account", Error: "Wrong password.", D: c.accountView(r, s)})
		return
	}
	if err := c.accounts.disableTOTP(s.User); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	c.record(r, s, auditTOTPDisabled, s.User, "")
	c.render(w, r, s, "account", view{Title: "Your account", Nav: "account", Flash: "Two-factor login is off.", D: c.accountView(r, s)})
}

func (c *Console) accountPassword(w http.ResponseWriter, r *http.Request, s *session) {
	fail := func(msg string) {
		w.WriteHeader(http.StatusBadRequest)
		c.render(w, r, s, "account", view{Title: "Your account", Nav: "account", Error: msg, D: c.accountView(r, s)})
	}
	res, err := c.accounts.checkPassword(s.User, r.PostFormValue("current"))
	if err != nil {
		c.noteFailure(r, s.User, res, err)
		fail("The current password is wrong.")
		return
	}
	if r.PostFormValue("password") != r.PostFormValue("password2") {
		fail("The two new passwords differ.")
		return
	}
	if err := c.accounts.setPassword(s.User, r.PostFormValue("password")); err != nil {
		fail(err.Error())
		return
	}
	// Other sessions of this account end; this one is replaced.
	c.sessions.endUser(s.User)
	c.record(r, s, auditPassword, s.User, "")
	c.startSession(w, r, s.User, s.Role)
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

// Users (admins manage accounts; auditors see the list).

type usersView struct {
	Accounts []AccountInfo
	Sessions map[string]int
}

func (c *Console) usersView() usersView {
	uv := usersView{Accounts: c.accounts.list(), Sessions: map[string]int{}}
	for _, a := range uv.Accounts {
		uv.Sessions[a.Name] = c.sessions.count(a.Name)
	}
	return uv
}

func (c *Console) usersPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, s, "users", view{Title: "Accounts", Nav: "users", Flash: flashOf(r), D: c.usersView()})
}

func (c *Console) createAccount(r *http.Request, s *session, name, password string, role Role) error {
	if err := c.accounts.create(strings.TrimSpace(name), password, role); err != nil {
		return err
	}
	c.record(r, s, auditAccountAdd, name, "role "+string(role))
	return nil
}

func (c *Console) usersCreate(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.createAccount(r, s, r.PostFormValue("user"), r.PostFormValue("password"), Role(r.PostFormValue("role"))); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		c.render(w, r, s, "users", view{Title: "Accounts", Nav: "users", Error: err.Error(), D: c.usersView()})
		return
	}
	http.Redirect(w, r, "/users?done=account-added", http.StatusSeeOther)
}

func (c *Console) usersUnlock(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PostFormValue("user")
	if err := c.accounts.unlock(name); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.record(r, s, auditUnlock, name, "")
	http.Redirect(w, r, "/users?done=account-unlocked", http.StatusSeeOther)
}

func (c *Console) usersRemove(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PostFormValue("user")
	if err := c.accounts.remove(name); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		c.render(w, r, s, "users", view{Title: "Accounts", Nav: "users", Error: err.Error(), D: c.usersView()})
		return
	}
	c.sessions.endUser(name)
	c.record(r, s, auditAccountDel, name, "")
	http.Redirect(w, r, "/users?done=account-removed", http.StatusSeeOther)
}

func (c *Console) apiUsers(w http.ResponseWriter, _ *http.Request, _ *session) {
	writeJSON(w, http.StatusOK, map[string]any{"accounts": c.accounts.list()})
}

func (c *Console) apiUsersCreate(w http.ResponseWriter, r *http.Request, s *session) {
	var in struct {
		Name     string `json:"name"`
		Password string `json:"password"`
		Role     Role   `json:"role"`
	}
	if err := decodeJSON(r, &in); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := c.createAccount(r, s, in.Name, in.Password, in.Role); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	info, _ := c.accounts.get(in.Name)
	writeJSON(w, http.StatusCreated, info)
}
