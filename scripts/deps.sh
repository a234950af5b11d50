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
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# bpffs for pinned programs and maps.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
