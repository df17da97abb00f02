#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Installs what the tests need first:
# real etcd, keepalived, haproxy, openssh-server (sshd per node namespace), containerd, runc, the
# CNI plugins, openssl, iproute2 are exercised for real; Kubernetes (kubeadm, kubelet,
# kube-apiserver, kubectl, …), etcd 3.6, CoreDNS and crictl are built from upstream source with
# Go (scripts/k8s-binaries.sh, cached in /var/cache/kubeha) before the tests that run them.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=(etcd-server etcd-client keepalived haproxy nginx-light openssh-server openssl iproute2 iputils-ping procps curl containerd
  runc containernetworking-plugins iptables socat conntrack ethtool ebtables gcc libc6-dev shellcheck)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts these on install; the tests run their own instances in namespaces.
  for s in etcd keepalived haproxy ssh nginx containerd; do systemctl disable --now "$s" >/dev/null 2>&1 || service "$s" stop >/dev/null 2>&1 || true; done
fi

# Real Kubernetes for the tests: built once (20-40 min cold on 2 cores), then reused.
command -v go >/dev/null || { echo "test.sh: the Go toolchain (1.24 or newer) is needed to build Kubernetes; install Go first" >&2; exit 1; }
echo "==> Kubernetes binaries (scripts/k8s-binaries.sh)"
KUBEHA_K8S_BIN=$(bash scripts/k8s-binaries.sh | tail -n 1)
export KUBEHA_K8S_BIN
echo "    $KUBEHA_K8S_BIN: $(tr '\n' ' ' < "$KUBEHA_K8S_BIN/VERSIONS")"

# Cargo's build cache lives beside the Kubernetes build, outside the checkout: CI starts from a
# clean checkout, and a cold compile of the workspace and its tests costs ~15 min on 2 cores.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/kubeha/cargo-target}
mkdir -p "$CARGO_TARGET_DIR"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> shellcheck (the step scripts kubeha runs on nodes)"
shellcheck -s sh crates/plan/src/scripts/*.sh crates/deploy/src/etcd/scripts/*.sh crates/deploy/src/remove/scripts/*.sh
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
# Tests that use namespaces and real daemons run in CI too (we are root there).
cargo test --workspace --quiet -- --test-threads="${KUBEHA_TEST_THREADS:-2}" 2>&1 | tee "$CARGO_TARGET_DIR/test.log"
grep -q "test result: FAILED" "$CARGO_TARGET_DIR/test.log" && exit 1
echo "==> all tests passed"
