package snmp

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"slices"
	"strings"
	"time"
)

// SNMPv3 users belong to snmpd, the AgentX master: it authenticates and
// decrypts requests (USM) and checks access (VACM) before any reaches this
// subagent. The appliance manages them through a configuration fragment
// that snmpd reads (includeFile in snmpd.conf), rewriting it whole and
// asking snmpd to read it again (SIGHUP). Each user is two lines:
//
//	createUser NAME SHA-256 -m 0xKu AES -m 0xKu   the USM user
//	rouser -s usm NAME priv .1.3.6.1.4.1.32473    read-only, authPriv only
//
// The keys are master keys (Ku, RFC 3414 A.2 with the user's hash,
// RFC 7860): what snmpd derives from a passphrase before localising it to
// its engine. The passphrases themselves are never written anywhere.
//
// net-snmp keeps a user it has read until it restarts, even when its
// createUser line is gone (it saves users in its persistent store on
// exit), and on SIGHUP a createUser line replaces the keys of a user of
// that name. So a removed user is not simply dropped: it stays as a
// tombstone, a createUser line with random keys nobody knows and no
// rouser line, which makes snmpd refuse the old passphrases at once
// (authentication failure) rather than only deny access.

// USM authentication and privacy protocols offered.
const (
	AuthSHA256 = "SHA-256"
	AuthSHA512 = "SHA-512"
	PrivAES    = "AES" // AES-128-CFB (RFC 3826)
)

// Views a user may read.
const (
	ViewPortcullis = "portcullis" // the PORTCULLIS-MIB subtree only
	ViewAll        = "all"        // everything snmpd serves
)

// MinPassphrase is net-snmp's minimum passphrase length.
const MinPassphrase = 8

// User is one SNMPv3 user of the fragment.
type User struct {
	Name  string    `json:"name"`
	Auth  string    `json:"auth"`
	Priv  string    `json:"priv"`
	View  string    `json:"view"`
	Added time.Time `json:"added"`
	// Removed: a tombstone (random keys, no access).
	Removed bool `json:"-"`

	authKey, privKey []byte
}

// UserInput is a user to add, with its passphrases.
type UserInput struct {
	Name           string
	Auth, Priv     string
	View           string
	AuthPassphrase string
	PrivPassphrase string
}

var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

func authHash(auth string) (func() hash.Hash, error) {
	switch auth {
	case AuthSHA256:
		return sha256.New, nil
	case AuthSHA512:
		return sha512.New, nil
	}
	return nil, fmt.Errorf("authentication %q: one of %s, %s", auth, AuthSHA256, AuthSHA512)
}

// Check reports what is wrong with in, naming the field.
func (in *UserInput) Check() error {
	var errs []error
	if !userName.MatchString(in.Name) {
		errs = append(errs, fmt.Errorf("name %q: 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit", in.Name))
	}
	if _, err := authHash(in.Auth); err != nil {
		errs = append(errs, err)
	}
	if in.Priv != PrivAES {
		errs = append(errs, fmt.Errorf("privacy %q: %s", in.Priv, PrivAES))
	}
	if in.View != ViewPortcullis && in.View != ViewAll {
		errs = append(errs, fmt.Errorf("view %q: %s or %s", in.View, ViewPortcullis, ViewAll))
	}
	for _, p := range []struct{ field, v string }{{"authentication passphrase", in.AuthPassphrase}, {"privacy passphrase", in.PrivPassphrase}} {
		switch {
		case len(p.v) < MinPassphrase:
			errs = append(errs, fmt.Errorf("%s: at least %d characters", p.field, MinPassphrase))
		case len(p.v) > 256:
			errs = append(errs, fmt.Errorf("%s: at most 256 characters", p.field))
		case strings.ContainsFunc(p.v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			errs = append(errs, fmt.Errorf("%s: control characters are not allowed", p.field))
		}
	}
	return errors.Join(errs...)
}

// PassphraseKey is the master key Ku of passphrase for the hash (RFC 3414
// A.2.1 with h for MD5: h over 1 MiB of the passphrase repeated).
func PassphraseKey(h func() hash.Hash, passphrase string) []byte {
	const total = 1 << 20
	d := h()
	p := []byte(passphrase)
	buf := bytes.Repeat(p, 64/len(p)+2)
	for n := 0; n < total; {
		chunk := buf[n%len(p):][:64]
		if total-n < 64 {
			chunk = chunk[:total-n]
		}
		d.Write(chunk)
		n += len(chunk)
	}
	return d.Sum(nil)
}

// Users is the content of the fragment.
type Users struct{ list []User }

// Active are the users with access, by name.
func (u *Users) Active() []User {
	var out []User
	for _, x := range u.list {
		if !x.Removed {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (u *Users) find(name string) int {
	return slices.IndexFunc(u.list, func(x User) bool { return x.Name == name })
}

// Add adds in (an active user of that name is an error; a tombstone is
// replaced).
func (u *Users) Add(in UserInput, now time.Time) error {
	if err := in.Check(); err != nil {
		return err
	}
	i := u.find(in.Name)
	if i >= 0 && !u.list[i].Removed {
		return fmt.Errorf("user %q exists: remove it first", in.Name)
	}
	h, _ := authHash(in.Auth)
	x := User{Name: in.Name, Auth: in.Auth, Priv: in.Priv, View: in.View, Added: now.UTC().Truncate(time.Second),
		authKey: PassphraseKey(h, in.AuthPassphrase), privKey: PassphraseKey(h, in.PrivPassphrase)}
	if i >= 0 {
		u.list[i] = x
	} else {
		u.list = append(u.list, x)
	}
	return nil
}

// Remove makes name a tombstone.
func (u *Users) Remove(name string, now time.Time) error {
	i := u.find(name)
	if i < 0 || u.list[i].Removed {
		return fmt.Errorf("no user %q", name)
	}
	x := &u.list[i]
	x.Removed, x.Added = true, now.UTC().Truncate(time.Second)
	h, _ := authHash(x.Auth)
	size := h().Size()
	x.authKey, x.privKey = make([]byte, size), make([]byte, size)
	_, _ = rand.Read(x.authKey)
	_, _ = rand.Read(x.privKey)
	return nil
}

const usersHeader = `# SNMPv3 users of the Portcullis appliance, written by its console
# (snmp.users_file); snmpd reads it through "includeFile" in snmpd.conf.
# Keys are master keys (Ku), never passphrases. A "removed" user keeps
# random keys and no access, so snmpd refuses its old passphrases until it
# restarts. Rewritten whole: edit through the console.
`

// Render is the fragment's text.
func (u *Users) Render() []byte {
	var b bytes.Buffer
	b.WriteString(usersHeader)
	for _, x := range u.list {
		b.WriteByte('\n')
		if x.Removed {
			fmt.Fprintf(&b, "# removed %s %s\n", x.Name, x.Added.Format(time.RFC3339))
		} else {
			fmt.Fprintf(&b, "# user %s %s %s %s %s\n", x.Name, x.Auth, x.Priv, x.View, x.Added.Format(time.RFC3339))
		}
		fmt.Fprintf(&b, "createUser %s %s -m 0x%s %s -m 0x%s\n", x.Name, x.Auth, hex.EncodeToString(x.authKey), x.Priv, hex.EncodeToString(x.privKey))
		if !x.Removed {
			view := ""
			if x.View == ViewPortcullis {
				view = " ." + EnterpriseRoot.String()
			}
			fmt.Fprintf(&b, "rouser -s usm %s priv%s\n", x.Name, view)
		}
	}
	return b.Bytes()
}

// ParseUsers reads a fragment Render wrote (empty: no users). Lines it
// does not know are an error naming the line: the file is the appliance's.
func ParseUsers(b []byte) (*Users, error) {
	u := &Users{}
	var cur *User
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		bad := func(why string) error { return fmt.Errorf("line %d: %s: %q", n, why, line) }
		switch {
		case len(f) == 0:
		case len(f) == 7 && f[0] == "#" && f[1] == "user", len(f) == 4 && f[0] == "#" && f[1] == "removed":
			x := User{Name: f[2], Removed: f[1] == "removed"}
			stamp := f[len(f)-1]
			if !x.Removed {
				x.Auth, x.Priv, x.View = f[3], f[4], f[5]
			}
			t, err := time.Parse(time.RFC3339, stamp)
			if err != nil {
				return nil, bad("bad time")
			}
			x.Added = t
			if u.find(x.Name) >= 0 {
				return nil, bad("user listed twice")
			}
			u.list = append(u.list, x)
			cur = &u.list[len(u.list)-1]
		case strings.HasPrefix(line, "#"):
		case len(f) == 8 && f[0] == "createUser" && f[3] == "-m" && f[6] == "-m":
			if cur == nil || f[1] != cur.Name || cur.authKey != nil {
				return nil, bad("createUser without its comment line")
			}
			if cur.Removed {
				cur.Auth, cur.Priv = f[2], f[5]
			}
			h, err := authHash(f[2])
			if err != nil || f[2] != cur.Auth || f[5] != PrivAES {
				return nil, bad("unexpected protocols")
			}
			var e1, e2 error
			cur.authKey, e1 = hex.DecodeString(strings.TrimPrefix(f[4], "0x"))
			cur.privKey, e2 = hex.DecodeString(strings.TrimPrefix(f[7], "0x"))
			if e1 != nil || e2 != nil || len(cur.authKey) != h().Size() || len(cur.privKey) != h().Size() {
				return nil, bad("bad key")
			}
		case f[0] == "rouser" && len(f) >= 5 && f[1] == "-s" && f[2] == "usm":
			if cur == nil || f[3] != cur.Name || cur.Removed {
				return nil, bad("rouser without its user")
			}
		default:
			return nil, bad("not a line the appliance writes")
		}
	}
	for _, x := range u.list {
		if x.authKey == nil {
			return nil, fmt.Errorf("user %q has no createUser line", x.Name)
		}
	}
	return u, sc.Err()
}
