// Package scanners runs private malware scanners for tests: clamd (the
// Debian clamav-daemon package) with the project's test signature database
// (proxy/scan/testdata/clamav: EICAR, a marker string and a hash signature,
// no official databases), and c-icap with its virus_scan service backed by
// such a clamd and its echo service. Each instance has its configuration,
// socket, logs and temporary files in its own directory, listens on a Unix
// socket or a loopback port only, and is stopped (its whole process group)
// when the test ends. It also builds the test samples those signatures
// match. It is imported by tests only.
package scanners
