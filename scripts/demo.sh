#!/usr/bin/env bash
# Starts the lab origin and the appliance (embedded default configuration) in
# the demo lab, then prints what to try. The lab origin's CA is made a system
# root of the gateway for the appliance (SSL_CERT_DIR), the way an admin would
# install an internal CA; the appliance's own CA is generated on first start.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=/run/portcullis-demo
G=pcl-gw O=pcl-origin C=pcl-client

start() {
  mkdir -p $RUN/roots
  ip netns exec $O setsid bin/lab-origin -dir $RUN -names origin.lab,198.18.2.2,fd00:7c:2::2 \
    >$RUN/origin.log 2>&1 </dev/null & echo $! >$RUN/origin.pid
  for _ in $(seq 50); do [ -s $RUN/lab-ca.pem ] && break; sleep 0.1; done
  cp $RUN/lab-ca.pem $RUN/roots/lab-ca.pem
  # nsenter keeps the host's /sys/fs/bpf, where the datapath is pinned.
  SSL_CERT_DIR=/etc/ssl/certs:$RUN/roots nsenter --net=/run/netns/$G setsid bin/portcullis run \
    >$RUN/access.log 2>$RUN/portcullis.log </dev/null & echo $! >$RUN/portcullis.pid
  for _ in $(seq 100); do
    nsenter --net=/run/netns/$G curl -sf http://127.0.0.1:9780/healthz >/dev/null 2>&1 && break; sleep 0.1
  done
  nsenter --net=/run/netns/$G curl -sf http://127.0.0.1:9780/healthz >/dev/null || { cat $RUN/portcullis.log; exit 1; }
  bin/portcullis ca cert >$RUN/appliance-ca.pem
  cat <<MSG

Portcullis demo is running on $G (LAN lan0 198.18.1.1). Try, from the client:

  ip netns exec $C curl -sv --cacert $RUN/appliance-ca.pem https://origin.lab/ 2>&1 | grep -E 'issuer|hello'
      → the certificate is issued by the appliance's own CA ("Portcullis CA …")
  ip netns exec $C curl -s http://origin.lab/
  tail -n 2 $RUN/access.log            → one JSON access-log line per request (client, sni, ja4, decision …)
  bin/portcullis activity search --limit 3   → the same decisions as durable activity events
  nsenter --net=/run/netns/$G curl -s 127.0.0.1:9780/metrics | grep portcullis_datapath

Logs: $RUN/portcullis.log  Stop: make demo-down
MSG
}

stop() {
  for p in portcullis origin; do
    [ -f $RUN/$p.pid ] && kill "$(cat $RUN/$p.pid)" 2>/dev/null || true
  done
  sleep 0.5
  [ -e /run/netns/$G ] && nsenter --net=/run/netns/$G bin/portcullis datapath detach || true
  rm -rf $RUN
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
