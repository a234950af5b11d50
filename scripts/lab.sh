#!/usr/bin/env bash
# The demo lab: three hosts in network namespaces joined by veth.
#
#   pcl-client (eth0 198.18.1.2, fd00:7c:1::2)
#        │
#   pcl-gw     (lan0 198.18.1.1 / wan0 198.18.2.1)  ← the appliance runs here
#        │
#   pcl-origin (eth0 198.18.2.2, fd00:7c:2::2)      ← lab-origin serves origin.lab
#
# Names go to /etc/netns/<ns>/hosts. Nothing leaves these namespaces.
set -euo pipefail
C=pcl-client G=pcl-gw O=pcl-origin

up() {
  down >/dev/null 2>&1 || true
  for ns in $C $G $O; do ip netns add $ns; ip -n $ns link set lo up; done
  ip link add eth0 netns $C type veth peer name lan0 netns $G
  ip link add eth0 netns $O type veth peer name wan0 netns $G
  ip -n $C addr add 198.18.1.2/24 dev eth0; ip -n $C addr add fd00:7c:1::2/64 dev eth0 nodad
  ip -n $G addr add 198.18.1.1/24 dev lan0; ip -n $G addr add fd00:7c:1::1/64 dev lan0 nodad
  ip -n $G addr add 198.18.2.1/24 dev wan0; ip -n $G addr add fd00:7c:2::1/64 dev wan0 nodad
  ip -n $O addr add 198.18.2.2/24 dev eth0; ip -n $O addr add fd00:7c:2::2/64 dev eth0 nodad
  for l in "$C eth0" "$G lan0" "$G wan0" "$O eth0"; do set -- $l; ip -n $1 link set $2 up; done
  ip -n $C route add default via 198.18.1.1; ip -n $C -6 route add default via fd00:7c:1::1
  ip -n $O route add default via 198.18.2.1; ip -n $O -6 route add default via fd00:7c:2::1
  ip netns exec $G sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  for ns in $C $G $O; do
    mkdir -p /etc/netns/$ns
    printf '127.0.0.1 localhost\n198.18.2.2 origin.lab blocked.lab chat.lab\nfd00:7c:2::2 origin.lab blocked.lab chat.lab\n198.18.1.1 gateway.lab\n' >/etc/netns/$ns/hosts
  done
  echo "lab up: $C, $G, $O"
}

down() {
  for ns in $C $G $O; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
    rm -rf /etc/netns/$ns
  done
  echo "lab down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
