// Package dokuwiki runs a private DokuWiki (the Debian package, served by
// nginx and php-fpm over TLS) inside a lab network namespace, as a real web
// application for end-to-end tests: logins with form tokens, page edits,
// media uploads and downloads. Each instance has its own configuration,
// users and data in a temporary directory; the host's /etc/dokuwiki and
// /var/lib/dokuwiki are only read. It is imported by tests only.
package dokuwiki
