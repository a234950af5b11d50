// Package packaging holds the Debian package of the appliance: the nfpm
// recipe (nfpm.yaml, built by build-deb.sh through `make deb`), the systemd
// unit, sysusers.d and tmpfiles.d entries, the maintainer scripts and the
// snmpd drop-in. It has no Go code; its tests build the package twice and
// compare the bytes, run lintian and systemd-analyze security on it, and
// install, upgrade, remove and purge it in a clean Debian 12 root.
package packaging
