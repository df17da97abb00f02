#!/usr/bin/env bash
# Wall time of `kubeha up` on 5 and 20 namespace nodes (3 control-plane + 2 / 17 workers),
# each a real sshd in its own network, mount and UTS namespace, with real etcd, containerd
# and the front door; kubeadm/kubectl are the test stand-ins. Runs the root_up test that
# prints the times (debug build, as the test suite builds it). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
for workers in 2 17; do
  KUBEHA_UP_WORKERS=$workers cargo test -q -p kubeha --test root_up -- --nocapture \
    root_up_many_nodes_then_a_clean_rerun 2>&1 | grep -E "^kubeha up, |test result"
done
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
