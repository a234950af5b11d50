package idp

import (
	"crypto/subtle"
	"slices"
)

// User is a lab account known to both identity providers.
type User struct {
	Name     string
	Password string
	Email    string
	Groups   []string
	// Claims are extra ID token claims (scope "profile"), such as a
	// device-compliance flag an IdP asserts.
	Claims map[string]any
}

// DefaultUsers are the accounts the lab uses unless a test brings its own.
var DefaultUsers = []User{
	{Name: "alice", Password: "alice-pw", Email: "alice@lab.example", Groups: []string{"staff", "finance"}},
	{Name: "bob", Password: "bob-pw", Email: "bob@lab.example", Groups: []string{"staff"}},
	// carol signs in from a device her IdP reports as compliant.
	{Name: "carol", Password: "carol-pw", Email: "carol@lab.example", Groups: []string{"staff", "contractors"},
		Claims: map[string]any{"device_compliant": "true"}},
}

// userDirectory looks users up by name and checks passwords.
type userDirectory map[string]User

func newUserDirectory(users []User) (userDirectory, error) {
	if len(users) == 0 {
		users = DefaultUsers
	}
	dir := make(userDirectory, len(users))
	for _, u := range users {
		if u.Name == "" || u.Password == "" {
			return nil, errorf("user %q: name and password are required", u.Name)
		}
		if _, dup := dir[u.Name]; dup {
			return nil, errorf("user %q is listed twice", u.Name)
		}
		u.Groups = slices.Clone(u.Groups)
		dir[u.Name] = u
	}
	return dir, nil
}

// authenticate returns the user when name and password match. The password
// comparison takes the same time whether or not the user exists.
func (d userDirectory) authenticate(name, password string) (User, bool) {
	u, ok := d[name]
	want := u.Password
	if !ok {
		want = "\x00no such user\x00"
	}
	match := subtle.ConstantTimeCompare([]byte(want), []byte(password)) == 1
	return u, ok && match
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
