#!/usr/bin/env bash
# The main job on its embedded default: a real HA control-plane lab on this machine.
# Three node namespaces, each with a TLS etcd member and kubeha's front door (VRRP VIP +
# health-checked load balancer) in front of all members; a 5-cycle failover drill writes keys
# through the VIP while it kills, stops, unplugs and starves the VIP holder, then reports
# failover times and whether any acknowledged write was lost. Removes the lab at the end
# (KEEP=1 keeps it; `kubeha lab down --name demo` removes it later). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/demo.sh: needs root (network namespaces, raw sockets); run it with sudo" >&2
  exit 2
fi
need=()
for p in etcd-server etcd-client iproute2 curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "==> installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi
echo "==> building kubeha (release)"
cargo build --release --quiet -p kubeha
bin=$PWD/target/release/kubeha
mkdir -p target/demo
if [ -z "${KEEP:-}" ]; then
  trap '"$bin" lab down --name demo >/dev/null || true' EXIT
fi
"$bin" lab up --name demo
"$bin" lab status --name demo
"$bin" lab drill --name demo --cycles "${CYCLES:-5}" --json target/demo/drill.json --svg target/demo/drill.svg
echo "==> report: target/demo/drill.json, timeline: target/demo/drill.svg"
