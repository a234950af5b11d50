#!/usr/bin/env bash
# Starts the lab origin and the appliance in the demo lab, then prints what
# to try. The appliance runs on the embedded default configuration with one
# key overlaid: policy.dir, pointing at scripts/demo/policies.yaml. The lab
# origin's CA is made a system root of the gateway for the appliance
# (SSL_CERT_DIR), the way an admin would install an internal CA; the
# appliance's own CA is generated on first start in /var/lib/portcullis.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=/run/portcullis-demo
STATE=/var/lib/portcullis
G=pcl-gw O=pcl-origin C=pcl-client

start() {
  mkdir -p $RUN/roots $RUN/policies
  cp scripts/demo/policies.yaml $RUN/policies/demo.yaml
  printf 'policy:\n  dir: %s/policies\n' $RUN >$RUN/portcullis.yaml
  # Remember that the demo made the state directory, so demo-clean removes
  # only what the demo created.
  [ -e $STATE ] || { mkdir -p $STATE && touch $STATE/.made-by-demo; }
  ip netns exec $O setsid bin/lab-origin -dir $RUN -names origin.lab,blocked.lab,chat.lab,198.18.2.2,fd00:7c:2::2 \
    >$RUN/origin.log 2>&1 </dev/null & echo $! >$RUN/origin.pid
  for _ in $(seq 50); do [ -s $RUN/lab-ca.pem ] && break; sleep 0.1; done
  cp $RUN/lab-ca.pem $RUN/roots/lab-ca.pem
  # nsenter keeps the host's /sys/fs/bpf, where the datapath is pinned.
  SSL_CERT_DIR=/etc/ssl/certs:$RUN/roots nsenter --net=/run/netns/$G setsid bin/portcullis run --config $RUN/portcullis.yaml \
    >$RUN/access.log 2>$RUN/portcullis.log </dev/null & echo $! >$RUN/portcullis.pid
  for _ in $(seq 100); do
    nsenter --net=/run/netns/$G curl -sf http://127.0.0.1:9780/healthz >/dev/null 2>&1 && break; sleep 0.1
  done
  nsenter --net=/run/netns/$G curl -sf http://127.0.0.1:9780/healthz >/dev/null || { cat $RUN/portcullis.log; exit 1; }
  bin/portcullis ca cert --config $RUN/portcullis.yaml >$RUN/appliance-ca.pem
  local c="ip netns exec $C curl --cacert $RUN/appliance-ca.pem"
  cat <<MSG

Portcullis demo is running on $G (LAN lan0 198.18.1.1) with the policies in
scripts/demo/policies.yaml. Try, from the client:

  $c -sv https://origin.lab/ 2>&1 | grep -E 'issuer|hello'
      → intercepted: the certificate is issued by the appliance's own CA ("Portcullis CA …")
  $c -si https://origin.lab/reports/customers.csv
      → the download with a card number is replaced: customers.csv.blocked.txt with the policy's message
  $c -sS https://blocked.lab/
      → refused with a TLS alert (curl is a native client; a browser gets a block page)
  ip netns exec $C curl -si http://blocked.lab/
      → the same site over plain HTTP: 403 with the policy's message
  $c -sS https://chat.lab/
      → the chat refuses native clients (policy chat-in-the-browser-only); curl's User-Agent would not change that
  bin/portcullis activity search --config $RUN/portcullis.yaml --action block
      → each refusal above as a durable activity event (policy, app, client kind, file, reason)
  tail -n 2 $RUN/access.log            → one JSON access-log line per request
  nsenter --net=/run/netns/$G curl -s 127.0.0.1:9780/metrics | grep -E 'portcullis_(datapath_packets|session)_total'

Onboard your own app: add it to scripts/demo/policies.yaml (apps: id and
domains), write a policy for it, then: kill -HUP \$(cat $RUN/portcullis.pid)

Logs: $RUN/portcullis.log  Stop: make demo-down
MSG
}

stop() {
  for p in portcullis origin; do
    [ -f $RUN/$p.pid ] && kill "$(cat $RUN/$p.pid)" 2>/dev/null || true
  done
  sleep 0.5
  [ -e /run/netns/$G ] && nsenter --net=/run/netns/$G bin/portcullis datapath detach --config $RUN/portcullis.yaml 2>/dev/null || true
  rm -rf $RUN
  if [ -e $STATE ]; then
    echo "left in place: $STATE (the appliance CA and the activity store); make demo-clean removes them"
  fi
}

clean() {
  if [ -e $STATE/.made-by-demo ]; then
    rm -rf $STATE
    echo "removed $STATE (the demo's CA and activity store)"
  elif [ -e $STATE ]; then
    echo "$STATE was not made by the demo: left alone" >&2
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  clean) clean ;;
  *) echo "usage: $0 start|stop|clean" >&2; exit 2 ;;
esac
