#!/usr/bin/env bash
# Wall time and peak memory of `kubeha plan` (text and --output json) for large inventories:
# 5 control-plane nodes, the rest workers. Default sizes 1,000, 5,000 and 10,000 nodes; give
# others as arguments. Median of 5 runs each, release build. Goals (issue 17): 5,000 nodes
# under 1 s, 10,000 under 2 s, memory linear (under 300 MB at 10,000), JSON within 2x of text.
# Results go in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(1000 5000 10000)
cargo build --release --quiet -p kubeha
bin=./target/release/kubeha
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
inventory() {
  local n=$1
  echo "cluster: { name: big, kubernetes_version: 1.34.4 }"
  echo "endpoint: { vip: 198.18.0.10/15 }"
  echo "nodes:"
  for i in $(seq 1 5); do echo "  - { name: cp$i, address: 198.18.0.$((10 + i))/15, roles: [control-plane] }"; done
  for i in $(seq 1 $((n - 5))); do echo "  - { name: w$i, address: 198.19.$((i / 250)).$((i % 250 + 1))/15, roles: [worker] }"; done
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '%-7s %-5s %10s %10s %12s\n' nodes mode "wall (s)" "peak (MB)" "output (MB)"
for n in "${sizes[@]}"; do
  inventory "$n" > "$dir/cluster.yaml"
  for mode in text json; do
    : > "$dir/walls"; : > "$dir/peaks"
    for _ in 1 2 3 4 5; do
      /usr/bin/time -f "%e %M" -o "$dir/t" "$bin" plan -f "$dir/cluster.yaml" --output "$mode" > "$dir/out"
      read -r wall kb < "$dir/t"
      echo "$wall" >> "$dir/walls"; echo $((kb / 1024)) >> "$dir/peaks"
    done
    printf '%-7s %-5s %10s %10s %12s\n' "$n" "$mode" "$(median < "$dir/walls")" "$(median < "$dir/peaks")" \
      "$(awk -v b="$(stat -c %s "$dir/out")" 'BEGIN { printf "%.1f", b / 1048576 }')"
  done
done
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
