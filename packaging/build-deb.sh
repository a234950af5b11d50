#!/usr/bin/env bash
# Builds the portcullis .deb reproducibly: the same commit (and VERSION)
# gives the same bytes. Usage: packaging/build-deb.sh [OUTDIR]
#   VERSION  package version (default: from the last commit, see below)
#   ARCH     Debian architecture (default: the Go toolchain's, amd64/arm64)
#   SOURCE_DATE_EPOCH  every timestamp (default: the last commit's time)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin}
GO=${GO:-go}

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
if [[ -z ${VERSION:-} ]]; then
	# No release tags yet: 0.0.0~git<commit date>.<short hash>, which sorts
	# by commit date and below any future 0.x release.
	VERSION="0.0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S).$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
fi
ARCH=${ARCH:-$($GO env GOARCH)}
export VERSION ARCH
export TZ=UTC LC_ALL=C

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
umask 022

# The shipped build (scripts/build-portcullis.sh: no cgo, position
# independent, no build paths or VCS stamps), without build ids or symbols:
# only the commit's sources and VERSION decide the bytes.
GO=$GO GOOS=linux GOARCH=$ARCH scripts/build-portcullis.sh "$stage/portcullis" \
	-ldflags="-s -w -buildid= -X main.version=$VERSION"
# Generated files come from the host's build of the same sources.
host_bin="$stage/portcullis"
if [[ $ARCH != "$($GO env GOHOSTARCH)" ]]; then
	host_bin="$stage/portcullis-host"
	CGO_ENABLED=0 $GO build -trimpath -buildvcs=false -o "$host_bin" ./cmd/portcullis
fi

# The conffile: the embedded default with every setting commented out (the
# file is overlaid on the embedded default, so commented keys keep following
# it across upgrades), except what the packaged service needs.
{
	cat <<'HEAD'
# /etc/portcullis/portcullis.yaml: Portcullis appliance configuration.
#
# This file is overlaid on the configuration embedded in the binary; every
# key is listed below, commented out, with its default. Uncomment and change
# what you need (at least datapath.interface), check with
#   portcullis config check --config /etc/portcullis/portcullis.yaml
#   portcullis doctor --config /etc/portcullis/portcullis.yaml
# and (re)start: systemctl restart portcullis. Policies reload on
# systemctl reload portcullis.

HEAD
	# The packaged service sees only its own directory of bpffs (see
	# /usr/lib/systemd/system/portcullis.service): datapath.pin_dir is set
	# below it, so the datapath section is live. Its access log goes to
	# the file in its LogsDirectory, not to the journal.
	"$host_bin" config default | sed -E \
		-e '/^[[:space:]]*(#|$)/! s/^/#/' \
		-e 's|^#datapath:$|datapath:|' \
		-e 's|^#  pin_dir: /sys/fs/bpf/portcullis$|  # The packaged service sees only /sys/fs/bpf/portcullis of bpffs.\n  pin_dir: /sys/fs/bpf/portcullis/datapath|' \
		-e 's|^#log:$|log:|' \
		-e 's|^#  access: stdout$|  # The packaged service writes its access log here (LogsDirectory).\n  access: /var/log/portcullis/access.log|'
} >"$stage/portcullis.yaml"
grep -q '^  pin_dir: /sys/fs/bpf/portcullis/datapath$' "$stage/portcullis.yaml"
grep -q '^  access: /var/log/portcullis/access.log$' "$stage/portcullis.yaml"
# It must stay a valid configuration.
"$host_bin" config check --config "$stage/portcullis.yaml" >/dev/null

cp packaging/systemd/portcullis.service "$stage/portcullis.service"
cp packaging/systemd/portcullis-snmp-users.path packaging/systemd/portcullis-snmp-users.service "$stage/"
cp packaging/sysusers.d/portcullis.conf "$stage/sysusers.conf"
cp packaging/tmpfiles.d/portcullis.conf "$stage/tmpfiles.conf"
cp packaging/snmp/portcullis-agentx.conf "$stage/snmpd-portcullis.conf"
cp mibs/PORTCULLIS-MIB.txt "$stage/PORTCULLIS-MIB.txt"
cp appliance/assets/grafana-dashboard.json "$stage/grafana-dashboard.json"
cp packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/"

mkdir -p "$stage/man"
"$host_bin" man "$stage/man"
gzip -9 -n "$stage"/man/*.1
"$host_bin" completion bash >"$stage/completion.bash"
"$host_bin" completion zsh >"$stage/completion.zsh"
"$host_bin" completion fish >"$stage/completion.fish"

mkdir -p "$stage/doc/examples"
cp packaging/debian/copyright "$stage/doc/copyright"
cp packaging/snmp/snmpd.conf "$stage/doc/examples/snmpd.conf"
cp packaging/snmp/README.md "$stage/doc/examples/README.snmp.md"
# A native package's changelog: one entry for this build.
cat >"$stage/doc/changelog" <<CHANGES
portcullis ($VERSION) unstable; urgency=medium

  * Built from commit $(git rev-parse HEAD 2>/dev/null || echo unknown).

 -- Portcullis maintainers <maintainers@users.noreply.r-seed-4cf7ff59.example>  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
CHANGES
gzip -9 -n "$stage/doc/changelog"
gzip -9 -n "$stage/doc/examples/README.snmp.md"

chmod 0755 "$stage/portcullis" "$stage"/postinst "$stage"/prerm "$stage"/postrm
find "$stage" -mindepth 1 -type d -exec chmod 0755 {} +
find "$stage" -mindepth 1 -type f ! -name portcullis ! -name portcullis-host ! -name postinst ! -name prerm ! -name postrm -exec chmod 0644 {} +
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
out=$(cd "$out" && pwd)
deb="$out/portcullis_${VERSION}_${ARCH}.deb"
rm -f "$deb"
cfg=$(pwd)/packaging/nfpm.yaml
# nfpm is a tool of this module (go.mod), at the version go.sum pins.
tools=$(mktemp -d)
trap 'rm -rf "$stage" "$tools"' EXIT
$GO build -o "$tools/nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm
(cd "$stage" && "$tools/nfpm" package --config "$cfg" --packager deb --target "$deb") >/dev/null
echo "$deb"
