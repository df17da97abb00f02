#!/usr/bin/env bash
# The main job on its embedded default: build kubeha and show the plan for the example
# inventory (the seeds' 3 control-plane + 2 worker topology). Changes nothing on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p kubeha
./target/release/kubeha plan -f examples/cluster.yaml
