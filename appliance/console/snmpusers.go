package console

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// SNMPv3 users, on the settings page: snmpd (the AgentX master) owns them;
// the appliance writes them to the snmpd configuration fragment it manages
// and has snmpd read it again. An add takes the passphrases once: they
// leave the request only as master keys in that file, and are never shown,
// kept in a revision or written to the audit log. These changes apply at
// once rather than through the pending-changes tray, whose revisions keep
// whole files.

// SNMPUsersOptions are the appliance's SNMP user hooks.
type SNMPUsersOptions struct {
	// File is the snmpd fragment (snmp.users_file), shown on the page.
	File string
	// List is the users with access.
	List func() ([]SNMPUser, error)
	// Add and Remove change the fragment and reload snmpd; the string
	// says how snmpd took it. Errors wrapping ErrSNMPUser are the
	// request's fault.
	Add    func(SNMPUserInput) (string, error)
	Remove func(name string) (string, error)
}

// SNMPUser is one user as shown (no key, no passphrase).
type SNMPUser struct {
	Name  string    `json:"name"`
	Auth  string    `json:"auth"`
	Priv  string    `json:"priv"`
	View  string    `json:"view"`
	Added time.Time `json:"added"`
}

// SNMPUserInput is POST /api/v1/snmp/users.
type SNMPUserInput struct {
	Name           string `json:"name"`
	Auth           string `json:"auth"` // SHA-256 (default) or SHA-512
	Priv           string `json:"priv"` // AES (default)
	View           string `json:"view"` // portcullis (default) or all
	AuthPassphrase string `json:"auth_passphrase"`
	PrivPassphrase string `json:"priv_passphrase"`
}

// ErrSNMPUser marks a refused user change (bad input, a name taken or
// unknown).
var ErrSNMPUser = errors.New("SNMP user")

var errNoSNMPUsers = errors.New("this appliance does not manage SNMPv3 users (snmp.users_file is not set)")

const (
	auditSNMPUserAdd    = "snmp_user_added"
	auditSNMPUserRemove = "snmp_user_removed"
)

// SNMPUsersView is GET /api/v1/snmp/users.
type SNMPUsersView struct {
	File  string     `json:"file"`
	Users []SNMPUser `json:"users"`
	Error string     `json:"error,omitempty"`
}

func (c *Console) snmpUsersView() *SNMPUsersView {
	o := c.opt.SNMPUsers
	if o == nil {
		return nil
	}
	v := &SNMPUsersView{File: o.File, Users: []SNMPUser{}}
	users, err := o.List()
	if err != nil {
		v.Error = err.Error()
	}
	v.Users = append(v.Users, users...)
	return v
}

func (c *Console) addSNMPUser(r *http.Request, s *session, in SNMPUserInput) (string, error) {
	o := c.opt.SNMPUsers
	if o == nil {
		return "", errNoSNMPUsers
	}
	if in.Auth == "" {
		in.Auth = "SHA-256"
	}
	if in.Priv == "" {
		in.Priv = "AES"
	}
	if in.View == "" {
		in.View = "portcullis"
	}
	how, err := o.Add(in)
	if err != nil {
		return "", err
	}
	c.record(r, s, auditSNMPUserAdd, in.Name, clip(fmt.Sprintf("%s/%s, view %s; %s", in.Auth, in.Priv, in.View, how), 300))
	return how, nil
}

func (c *Console) removeSNMPUser(r *http.Request, s *session, name string) (string, error) {
	o := c.opt.SNMPUsers
	if o == nil {
		return "", errNoSNMPUsers
	}
	how, err := o.Remove(name)
	if err != nil {
		return "", err
	}
	c.record(r, s, auditSNMPUserRemove, name, clip(how, 300))
	return how, nil
}

// ---- API ----

func (c *Console) apiSNMPUsers(w http.ResponseWriter, _ *http.Request, _ *session) {
	v := c.snmpUsersView()
	if v == nil {
		apiError(w, http.StatusNotFound, errNoSNMPUsers.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (c *Console) apiSNMPUserAdd(w http.ResponseWriter, r *http.Request, s *session) {
	var in SNMPUserInput
	if err := decodeJSON(r, &in); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	how, err := c.addSNMPUser(r, s, in)
	if err != nil {
		apiError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"name": in.Name, "snmpd": how})
}

func (c *Console) apiSNMPUserRemove(w http.ResponseWriter, r *http.Request, s *session) {
	how, err := c.removeSNMPUser(r, s, r.PathValue("name"))
	if err != nil {
		apiError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"name": r.PathValue("name"), "snmpd": how})
}

// ---- page forms ----

func (c *Console) snmpUserAddForm(w http.ResponseWriter, r *http.Request, s *session) {
	in := SNMPUserInput{Name: r.PostFormValue("name"), Auth: r.PostFormValue("auth"), Priv: r.PostFormValue("priv"), View: r.PostFormValue("view"),
		AuthPassphrase: r.PostFormValue("auth_passphrase"), PrivPassphrase: r.PostFormValue("priv_passphrase")}
	if _, err := c.addSNMPUser(r, s, in); err != nil {
		c.renderSettings(w, r, s, statusOf(err), "SNMP user not added: "+err.Error(), nil)
		return
	}
	http.Redirect(w, r, "/settings?done=snmp-user#snmp-users", http.StatusSeeOther)
}

func (c *Console) snmpUserRemoveForm(w http.ResponseWriter, r *http.Request, s *session) {
	if _, err := c.removeSNMPUser(r, s, r.PostFormValue("name")); err != nil {
		c.renderSettings(w, r, s, statusOf(err), "SNMP user not removed: "+err.Error(), nil)
		return
	}
	http.Redirect(w, r, "/settings?done=snmp-user#snmp-users", http.StatusSeeOther)
}
