#!/usr/bin/env bash
# What `kubeha up`'s executor itself costs at scale: a plan of N nodes (default 5000: 5
# control-plane, the rest workers) executed against the fake transport, whose nodes answer
# every command at once; a first run, a re-run that changes nothing, then `status`. Reports
# wall time, peak RSS, the most file descriptors open at once, transport calls per node and
# the per-node logs. Release build. Results go in docs/benchmarks.md.
#   bench/up-scale.sh [NODES] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p kubeha-deploy --features fake --example up_scale
./target/release/examples/up_scale "${1:-5000}" "${2:-16}"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
