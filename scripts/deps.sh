#!/usr/bin/env bash
# Installs what building, the lab and the test suite need on Debian 12.
# Idempotent: packages already present are left alone.
set -euo pipefail
pkgs=(
  clang-16 llvm-16 libbpf-dev           # make generate (bpf2go); clang is pinned to 16
  iproute2 iputils-ping util-linux       # lab namespaces, nsenter
  curl wrk linux-perf ca-certificates    # end-to-end clients and benchmarks
  procps psmisc bpftool                  # bpftool: datapath checks in tests and benchmarks
  snmpd snmp smitools snmptrapd          # AgentX master, SNMPv3 clients and trap receiver, smilint
  erlang-snmp                            # the IETF base MIB modules smilint needs (Debian ships them only here)
  nginx php-fpm php-xml dokuwiki         # DokuWiki, the real app behind the suffix proxy
  chromium libnss3-tools fonts-dejavu-core poppler-utils # headless browser tests; certutil for its trust store; pdftotext reads printed pages
  qpdf                                   # independent reader of protected PDFs (proxy/protect tests)
  clamav-daemon c-icap libc-icap-mod-virus-scan # proxy/scan tests: private clamd and c-icap (virus_scan via clamd_mod)
  firefox-esr wget git nodejs openssl python3 python3-requests # real clients whose ClientHellos proxy/classify/clienttest captures
  lintian mmdebstrap systemd systemd-container # make deb checks: lintian, clean Debian 12 roots for the dpkg life-cycle and the booted-unit (nspawn) tests, systemd-analyze security
  qemu-system-x86 qemu-utils grub-pc-bin fdisk # make image (sfdisk, BIOS GRUB, qcow2) and make vm-test (the appliance VM under qemu)
  vagrant vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients dnsmasq-base # make box-test: vagrant up with libvirt's qemu driver
)
# `deps.sh demo`: only what make demo needs (the lab and its clients); the
# binaries are built by Go and the eBPF objects are committed.
if [ "${1:-}" = demo ]; then
  pkgs=(iproute2 iputils-ping util-linux curl ca-certificates procps psmisc)
fi
# `deps.sh bench` (scripts/bench.sh): everything above plus the peer make
# bench measures against, squid with ssl-bump (Debian builds it with OpenSSL
# only in squid-openssl).
if [ "${1:-}" = bench ]; then
  pkgs+=(squid-openssl nghttp2-client) # nghttp2-client: h2load, for BenchmarkLabH2
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # squid's package starts it on the host's :3128; the benchmark runs its own.
  if [[ " ${missing[*]} " == *" squid-openssl "* ]]; then systemctl stop squid >/dev/null 2>&1 || true; fi
fi
# The services these packages bring are for the tests to start themselves,
# with their own configuration: none of them runs at boot on this host.
for unit in nginx php-fpm snmpd snmptrapd clamav-daemon clamav-freshclam c-icap \
  libvirtd libvirt-guests virtlogd virtlockd epmd dnsmasq squid; do
  for f in /lib/systemd/system/"$unit".service /lib/systemd/system/php*-fpm.service; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .service)
    case "$unit" in php-fpm) [[ "$name" == php*-fpm ]] || continue ;; *) [ "$name" = "$unit" ] || continue ;; esac
    systemctl disable "$name" >/dev/null 2>&1 || true
    systemctl disable "$name.socket" >/dev/null 2>&1 || true
  done
  # sysvinit links, for hosts (and containers) without systemd
  for f in /etc/init.d/"$unit" /etc/init.d/php*-fpm; do
    [ -e "$f" ] || continue
    update-rc.d "$(basename "$f")" disable >/dev/null 2>&1 || true
  done
done

# bpffs for pinned programs and maps.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
