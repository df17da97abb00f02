#!/usr/bin/env bash
# How long `kubeha plan` takes for a large inventory (default 1000 nodes: 5 control-plane,
# the rest workers). Goal: well under a second. Results go in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
cargo build --release --quiet -p kubeha
f=$(mktemp --suffix=.yaml); trap 'rm -f "$f"' EXIT
{
  echo "cluster: { name: big, kubernetes_version: 1.31.4 }"
  echo "endpoint: { vip: 198.18.0.10/15 }"
  echo "nodes:"
  for i in $(seq 1 5); do echo "  - { name: cp$i, address: 198.18.0.$((10 + i))/15, roles: [control-plane] }"; done
  for i in $(seq 1 $((n - 5))); do echo "  - { name: w$i, address: 198.19.$((i / 250)).$((i % 250 + 1))/15, roles: [worker] }"; done
} > "$f"
bin=./target/release/kubeha
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 2 --runs 10 "$bin plan -f $f" "$bin plan -f $f --output json"
else
  for mode in text json; do
    best=999999
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      s=$(date +%s%N); $bin plan -f "$f" --output $mode >/dev/null; e=$(date +%s%N)
      ms=$(( (e - s) / 1000000 )); [ $ms -lt $best ] && best=$ms
    done
    echo "plan $n nodes --output $mode: best of 10 = ${best} ms"
  done
fi
