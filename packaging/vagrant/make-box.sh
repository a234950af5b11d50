#!/usr/bin/env bash
# Builds a Vagrant box (libvirt provider) from the appliance image:
#   packaging/vagrant/make-box.sh IMAGE.qcow2 OUT.box
# The box is a tar of the image as box.img, metadata.json and a Vagrantfile
# of provider defaults. Like the image it holds no key and no password: the
# top-level Vagrantfile hands the SSH key to the VM's first boot.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image=$(realpath "${1:?usage: make-box.sh IMAGE.qcow2 OUT.box}")
out=${2:?usage: make-box.sh IMAGE.qcow2 OUT.box}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$image" "$stage/box.img"
# virtual_size in GiB, rounded up.
bytes=$(qemu-img info --output=json "$stage/box.img" | sed -n 's/.*"virtual-size": *\([0-9]*\).*/\1/p' | head -1)
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' $(( (bytes + (1 << 30) - 1) >> 30 )) >"$stage/metadata.json"
cp "$here/box.Vagrantfile" "$stage/Vagrantfile"
touch -d @"${SOURCE_DATE_EPOCH:-0}" "$stage"/*
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -cf "$out.tmp" metadata.json Vagrantfile box.img
mv "$out.tmp" "$out"
echo "$out"
