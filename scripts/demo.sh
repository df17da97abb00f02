#!/usr/bin/env bash
# The main job on its embedded default: a real HA Kubernetes on this machine, broken on purpose.
#
# `kubeha lab up --kubernetes` makes 3 control-plane node namespaces and 1 worker (each with its
# own sshd, containerd and kubelet), writes an inventory for them and runs `kubeha up` with it:
# kubeha's PKI, its front door (VRRP VIP + health-checked L4 proxy) on every control-plane node,
# real `kubeadm init` / `kubeadm join` from upstream binaries built here, all through the VIP.
# Then `kubeha lab drill`: ConfigMaps created through the VIP every 20 ms (kube-rs) and watched,
# while the VIP holder gets each fault in turn: its front door killed and SIGTERMed, its
# kube-apiserver and etcd killed, the whole node frozen, its cable pulled, and seed 002's test:
# its power off, then on, then `kubeha up`. It ends with a table per cycle (failover ms, failed
# writes, watch gap, acknowledged writes lost: must be 0). Removes the lab at the end (KEEP=1
# keeps it; `kubeha lab down --name demo` later).
#
# On a fresh machine it first builds Kubernetes from upstream source (Go module proxy; about 15
# minutes on 2 cores, once). If that is impossible it says so and runs the etcd lab instead: 3
# TLS etcd members behind the front door and a 5-cycle failover drill. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/demo.sh: needs root (namespaces, cgroups, raw sockets); run it with sudo" >&2
  exit 2
fi
need=()
for p in etcd-server etcd-client iproute2 curl openssh-server openssh-client containerd runc \
  containernetworking-plugins iptables socat conntrack ethtool ebtables gcc libc6-dev procps; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "==> installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The lab runs its own instances inside namespaces.
  for s in etcd ssh containerd; do systemctl disable --now "$s" >/dev/null 2>&1 || true; done
fi
echo "==> building kubeha (release)"
cargo build --release --quiet -p kubeha
bin=$PWD/target/release/kubeha
mkdir -p target/demo

etcd_lab() {
  if [ -z "${KEEP:-}" ]; then
    trap '"$bin" lab down --name demo >/dev/null || true' EXIT
  fi
  "$bin" lab up --name demo
  "$bin" lab status --name demo
  "$bin" lab drill --name demo --cycles "${CYCLES:-5}" --json target/demo/drill.json --svg target/demo/drill.svg
  echo "==> report: target/demo/drill.json, timeline: target/demo/drill.svg"
}

echo "==> Kubernetes binaries from upstream source (cached in /var/cache/kubeha; the first build takes ~15 min on 2 cores, its steps are shown)"
started=$(date +%s)
if ! k8s_bin=$(bash scripts/k8s-binaries.sh | tail -n 1) || [ ! -x "$k8s_bin/kubeadm" ]; then
  echo "==> cannot build Kubernetes here (the reason is above); running the etcd lab instead"
  etcd_lab
  exit 0
fi
echo "    $k8s_bin ($(($(date +%s) - started)) s)"

if [ -z "${KEEP:-}" ]; then
  trap '"$bin" lab down --name demo >/dev/null 2>&1 || true' EXIT
fi
"$bin" lab down --name demo >/dev/null 2>&1 || true
echo "==> kubeha lab up --kubernetes (about 2-3 minutes)"
"$bin" lab up --kubernetes --name demo --workers 1 --binaries "$k8s_bin"
"$bin" lab status --name demo || true

echo "==> kubeha lab drill: ConfigMaps written through the VIP every 20 ms while each fault hits the VIP holder in turn (about 2 minutes)"
"$bin" lab drill --name demo --cycles "${CYCLES:-7}" --hold 2s --json target/demo/drill.json --svg target/demo/drill.svg
"$bin" lab status --name demo || true
echo "==> report: target/demo/drill.json, timeline: target/demo/drill.svg; inventory: /var/lib/kubeha/lab/demo/cluster.yaml"
