#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Installs what the tests need first:
# real etcd, keepalived, haproxy, openssh-server (sshd per node namespace), containerd, openssl,
# iproute2 are exercised for real.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=(etcd-server etcd-client keepalived haproxy nginx-light openssh-server openssl iproute2 iputils-ping procps curl containerd)
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

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
# Tests that use namespaces and real daemons run in CI too (we are root there).
cargo test --workspace --quiet -- --test-threads="${KUBEHA_TEST_THREADS:-2}" 2>&1 | tee target/test.log
grep -q "test result: FAILED" target/test.log && exit 1
echo "==> all tests passed"
