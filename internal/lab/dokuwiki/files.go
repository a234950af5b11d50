package dokuwiki

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Paths of the Debian dokuwiki package: code, default configuration.
const (
	dokuCode = "/usr/share/dokuwiki"
	dokuConf = "/etc/dokuwiki"
)

// hostOwnedConf are files of /etc/dokuwiki that belong to the host's wiki
// (or link into its /var/lib/dokuwiki) and are written fresh instead.
var hostOwnedConf = map[string]bool{
	"local.php": true, "local.protected.php": true, "acl.auth.php": true,
	"users.auth.php": true, "plugins.local.php": true, "preload.php": true,
}

// copyDefaultConf copies the package's default configuration files (the
// cascade's "default" layer) into dst.
func copyDefaultConf(dst string) error {
	entries, err := os.ReadDir(dokuConf)
	if err != nil {
		return fmt.Errorf("read %s (is the Debian package dokuwiki installed?): %w", dokuConf, err)
	}
	for _, e := range entries {
		name := e.Name()
		if hostOwnedConf[name] || !e.Type().IsRegular() {
			continue
		}
		switch filepath.Ext(name) {
		case ".php", ".conf", ".json", ".css":
		default:
			continue
		}
		if err := copyFile(filepath.Join(dokuConf, name), filepath.Join(dst, name)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// dataDirs are the savedir subdirectories DokuWiki expects to exist.
var dataDirs = []string{
	"pages", "attic", "meta", "media", "media_attic", "media_meta",
	"cache", "index", "locks", "tmp", "log",
}

// prependPHP runs before every script (php-fpm auto_prepend_file). Debian's
// inc/preload.php defines DOKU_CONF and DOKU_MAIN_CONF only when they are not
// defined yet, so defining them first points this instance at its own
// configuration without touching the host's.
func prependPHP(conf string) string {
	return fmt.Sprintf(`<?php
if (!defined('DOKU_CONF')) define('DOKU_CONF', %[1]s);
if (!defined('DOKU_MAIN_CONF')) define('DOKU_MAIN_CONF', %[1]s);
`, phpString(conf+"/"))
}

func localPHP(title, savedir string) string {
	return fmt.Sprintf(`<?php
// Written by the Portcullis lab for one test instance.
$conf['title']          = %s;
$conf['savedir']        = %s;
$conf['useacl']         = 1;
$conf['authtype']       = 'authplain';
$conf['passcrypt']      = 'bcrypt';
$conf['superuser']      = '@admin';
$conf['manager']        = '@admin';
$conf['disableactions'] = 'register,resendpwd';
$conf['userewrite']     = 0;
$conf['securecookie']   = 1;
$conf['updatecheck']    = 0;
$conf['dnslookups']     = 0;
$conf['usewordblock']   = 0;
$conf['mediarevisions'] = 1;
$conf['subscribers']    = 0;
$conf['notify']         = '';
$conf['registernotify'] = '';
$conf['remote']         = 0;
$conf['license']        = 'cc-by-sa';
$conf['plugin']['popularity']['autosubmit'] = 0;
`, phpString(title), phpString(savedir))
}

// aclPHP lets everyone read and logged-in users (group "user") edit,
// create, upload and delete everywhere.
const aclPHP = `# acl.auth.php
# <?php exit()?>
*               @ALL        1
*               @user       16
`

// usersPHP has one line per user: login:hash:name:mail:groups.
func usersPHP(users []user) string {
	var b strings.Builder
	b.WriteString("# users.auth.php\n# <?php exit()?>\n")
	for _, u := range users {
		fmt.Fprintf(&b, "%s:%s:%s:%s:%s\n", u.login, sshaHash(u.password), u.name, u.mail, strings.Join(u.groups, ","))
	}
	return b.String()
}

type user struct {
	login, password, name, mail string
	groups                      []string
}

// sshaHash is DokuWiki's {SSHA} scheme (PassHash::hash_ssha): base64 of
// SHA-1(password || salt) || salt. DokuWiki cuts the salt it verifies with
// to 4 bytes, so a longer one would never match.
func sshaHash(password string) string {
	salt := make([]byte, 4)
	_, _ = rand.Read(salt)
	sum := sha1.Sum(append([]byte(password), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(sum[:], salt...))
}

func phpString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func fpmConf(dir string) string {
	return fmt.Sprintf(`[global]
pid = %[1]s/run/php-fpm.pid
error_log = %[1]s/log/php-fpm.log
daemonize = no

[wiki]
user = root
group = root
listen = %[1]s/run/php-fpm.sock
listen.mode = 0600
pm = static
pm.max_children = 3
catch_workers_output = yes
clear_env = yes
php_admin_value[auto_prepend_file] = %[1]s/prepend.php
php_admin_flag[log_errors] = on
php_admin_value[error_log] = %[1]s/log/php-errors.log
php_admin_value[session.save_path] = %[1]s/sessions
php_admin_value[upload_tmp_dir] = %[1]s/tmp
php_admin_value[sys_temp_dir] = %[1]s/tmp
php_admin_value[upload_max_filesize] = 32M
php_admin_value[post_max_size] = 40M
`, dir)
}

func nginxConf(dir string, addr netip.Addr, name string) string {
	listen := addr.String()
	if addr.Is6() {
		listen = "[" + listen + "]"
	}
	return fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
user root root;
pid %[1]s/run/nginx.pid;
error_log %[1]s/log/nginx-error.log warn;
events { worker_connections 256; }
http {
	include /etc/nginx/mime.types;
	default_type application/octet-stream;
	access_log %[1]s/log/nginx-access.log;
	client_body_temp_path %[1]s/nginx/body;
	fastcgi_temp_path %[1]s/nginx/fastcgi;
	proxy_temp_path %[1]s/nginx/proxy;
	uwsgi_temp_path %[1]s/nginx/uwsgi;
	scgi_temp_path %[1]s/nginx/scgi;
	client_max_body_size 40m;
	server_tokens off;
	server {
		listen %[2]s:443 ssl http2;
		server_name %[3]s;
		ssl_certificate %[1]s/tls/cert.pem;
		ssl_certificate_key %[1]s/tls/key.pem;
		root %[4]s;
		index doku.php;
		location ~ ^/(data|conf|bin|inc|vendor|install\.php)(/|$) { deny all; }
		location ~ /\. { deny all; }
		location / { try_files $uri $uri/ =404; }
		location ~ \.php$ {
			try_files $uri =404;
			include /etc/nginx/fastcgi_params;
			fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
			fastcgi_param HTTPS on;
			fastcgi_pass unix:%[1]s/run/php-fpm.sock;
		}
	}
}
`, dir, listen, name, dokuCode)
}
