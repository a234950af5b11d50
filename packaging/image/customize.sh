#!/bin/sh
# mmdebstrap customize hook of build-image.sh: $1 is the appliance's root,
# $2 the portcullis .deb. Installs the .deb, adds the appliance's own files
# (rootfs/), enables its units and removes everything that must be unique
# per machine or secret.
set -eu
root=$1
deb=$2
here=$(cd "$(dirname "$0")" && pwd)

cp "$deb" "$root/tmp/portcullis.deb"
chroot "$root" dpkg -i /tmp/portcullis.deb >/dev/null
rm -f "$root/tmp/portcullis.deb"

# The overlay, owned by root, modes as in the tree.
tar -C "$here/rootfs" --owner=0 --group=0 --numeric-owner -cf - . | tar -C "$root" -xf -

chroot "$root" systemctl enable systemd-networkd.service systemd-resolved.service \
	portcullis-firstboot.service portcullis-firstboot-report.service >/dev/null 2>&1
# Our first boot configures the machine; systemd-firstboot would stop at a
# prompt on the serial console.
chroot "$root" systemctl mask systemd-firstboot.service >/dev/null 2>&1
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

# grub.cfg boots the kernel package's links.
[ -e "$root/vmlinuz" ] && [ -e "$root/initrd.img" ] || { echo "customize.sh: /vmlinuz or /initrd.img missing" >&2; exit 1; }

echo portcullis >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tportcullis\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
printf 'LABEL=pcroot\t/\text4\terrors=remount-ro\t0\t1\n' >"$root/etc/fstab"

# Per-machine identity and secrets: made at first boot, never shipped.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
rm -f "$root/var/lib/systemd/random-seed" "$root/var/lib/systemd/credential.secret"
# snmpd's persistent file holds its engine ID: each appliance makes its own.
rm -f "$root/var/lib/snmp/snmpd.conf"
rm -rf "$root/var/lib/portcullis/"* "$root/var/lib/portcullis-appliance"

# Caches and logs of the build.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
rm -rf "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/var/tmp/*
