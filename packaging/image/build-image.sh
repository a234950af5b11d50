#!/usr/bin/env bash
# Builds the Portcullis appliance disk image (qcow2) from Debian's packages
# and the portcullis .deb. Needs root (mmdebstrap --mode=root, ownership in
# the file system); needs no loop device, no mount and no network but the
# Debian mirror.
#
#   packaging/image/build-image.sh DEB [OUTDIR]
#
#   SUITE    Debian suite of the appliance (default trixie: its 6.12 kernel has
#            TCX; the .deb, built for bookworm, installs unchanged there)
#   MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   SIZE     virtual disk size (default 4G)
#
# Output: OUTDIR/portcullis-appliance.qcow2 (a symlink to the image named by
# the content hash of its inputs: the .deb's bytes, this directory's recipe
# files and the settings above). An image for the same inputs is reused, so
# `make image` twice in a row builds once.
#
# Nothing secret is in the image: no SSH host key, no machine-id, no CA, no
# password, no SNMP user, no random seed. First boot makes them (see
# rootfs/usr/lib/portcullis-appliance/firstboot).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
deb=$(realpath "${1:?usage: build-image.sh DEB [OUTDIR]}")
out=${2:-bin}
SUITE=${SUITE:-trixie}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SIZE=${SIZE:-4G}
export LC_ALL=C TZ=UTC

[[ $(id -u) == 0 ]] || { echo "build-image.sh: needs root (mmdebstrap --mode=root)" >&2; exit 1; }
for tool in mmdebstrap sfdisk mkfs.ext4 grub-mkimage qemu-img; do
	command -v "$tool" >/dev/null || { echo "build-image.sh: $tool missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
grub_dir=/usr/lib/grub/i386-pc
[[ -f $grub_dir/boot.img ]] || { echo "build-image.sh: $grub_dir missing (grub-pc-bin)" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
key=$( {
	printf 'suite=%s mirror=%s size=%s\n' "$SUITE" "$MIRROR" "$SIZE"
	sha256sum <"$deb"
	cd "$here" && find build-image.sh packages.list rootfs -type f -print0 | sort -z | xargs -0 sha256sum
	cd "$here" && find rootfs -printf '%P %m %l\n' | sort
} | sha256sum | cut -c1-16)
image="$out/portcullis-appliance-$key.qcow2"
link="$out/portcullis-appliance.qcow2"
if [[ -s $image ]]; then
	ln -sfn "$(basename "$image")" "$link"
	echo "$link (cached: $image)"
	exit 0
fi

work=$(mktemp -d "$out/.image-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
start=$SECONDS

# The root file system. Recommends are not installed (mmdebstrap's default);
# documentation, man pages and locales are left out except copyrights and
# portcullis's documentation (its help is `portcullis --help`). Downloaded
# packages are kept in OUTDIR/.image-apt-cache for the next build.
# customize.sh installs the .deb (its dependencies are in packages.list) and
# the appliance's files.
cache="$out/.image-apt-cache"
mkdir -p "$cache"
pkgs=$(grep -v '^[[:space:]]*#' "$here/packages.list" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
mmdebstrap --mode=root --variant=apt --format=directory \
	--include="$pkgs" \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-include=/usr/share/doc/portcullis/*' \
	--skip=download/empty --skip=essential/unlink \
	--setup-hook='mkdir -p "$1/var/cache/apt/archives/"' \
	--setup-hook="sync-in '$cache' /var/cache/apt/archives/" \
	--customize-hook="sync-out /var/cache/apt/archives '$cache'" \
	--customize-hook="$here/customize.sh \"\$1\" \"$deb\"" \
	"$SUITE" "$root" \
	"deb $MIRROR $SUITE main" \
	"deb $MIRROR $SUITE-updates main" \
	"deb ${MIRROR%/debian}/debian-security $SUITE-security main"
echo "build-image.sh: root file system in $((SECONDS - start)) s, $(du -sm "$root" | cut -f1) MiB" >&2

# BIOS GRUB from the build host's grub-pc-bin: boot.img in the MBR, core.img
# in the gap before the first partition (sector 1, where boot.img looks for
# it), the modules under /boot/grub for anything grub.cfg loads later.
mkdir -p "$root/boot/grub/i386-pc"
cp "$grub_dir"/*.mod "$grub_dir"/*.lst "$root/boot/grub/i386-pc/"
grub-mkimage -O i386-pc -o "$work/core.img" -p '(hd0,msdos1)/boot/grub' \
	biosdisk part_msdos ext2 normal linux configfile search search_label echo test serial terminal gzio
core_sectors=$(( ($(stat -c %s "$work/core.img") + 511) / 512 ))
((core_sectors < 2047)) || { echo "build-image.sh: core.img too large" >&2; exit 1; }

# One partition from 1 MiB to the end, ext4 made from the directory (no
# loop device, no mount).
raw="$work/disk.raw"
truncate -s "$SIZE" "$raw"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk --quiet "$raw"
part_bytes=$(( $(stat -c %s "$raw") - 2048 * 512 ))
mkfs.ext4 -q -L pcroot -d "$root" -E offset=$((2048 * 512)) "$raw" "$((part_bytes / 1024))k"
dd if="$grub_dir/boot.img" of="$raw" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$raw" bs=512 seek=1 conv=notrunc status=none

qemu-img convert -c -O qcow2 "$raw" "$work/image.qcow2"
mv "$work/image.qcow2" "$image"
ln -sfn "$(basename "$image")" "$link"
# Older images of this recipe are superseded.
find "$out" -maxdepth 1 -name 'portcullis-appliance-*.qcow2' ! -name "$(basename "$image")" -delete
echo "build-image.sh: image in $((SECONDS - start)) s, $(du -m "$image" | cut -f1) MiB" >&2
echo "$link"
