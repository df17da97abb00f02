# shellcheck shell=sh
# kubeadm writes kubelet.conf early; a run that failed after it left a half-made node. Done
# means what kubeadm does last exists; half-done stops with the way out.
admin() { kubectl --kubeconfig /etc/kubernetes/admin.conf "$@"; }
already_done() { echo 'already done; kubeadm does not apply a changed configuration to a running node (kubeadm upgrade or a node replacement does)'; }
half_way() { echo "a previous $1 stopped half-way on this node: run \`kubeadm reset -f\` here (it removes what kubeadm made), then kubeha up again" >&2; exit 1; }
