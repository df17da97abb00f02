#!/usr/bin/env bash
# Failover benchmark: the same 3-node namespace lab runs keepalived + haproxy (kubeadm HA docs'
# settings), kubeha at the same advert interval, and kubeha at its default 40 ms; the same
# faults are measured from a client namespace. Root; addresses in 198.18.0.0/24 only.
#
#   bench/failover.sh                       # 3 runs per fault, 100 ms adverts for the comparison
#   bench/failover.sh --runs 5 --interval 100ms --wrk-secs 10 --soak-secs 600
#   bench/failover.sh --stress-secs 120     # VRRP under stress-ng on every core (4 workers a core)
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in keepalived haproxy nginx-light wrk iproute2 curl stress-ng; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  for s in keepalived haproxy nginx; do systemctl disable --now "$s" >/dev/null 2>&1 || true; done
fi
cargo build --release -q -p kubeha -p kubeha-lab --example failover_bench
exec ./target/release/examples/failover_bench "$PWD/target/release/kubeha" "$@"
