# shellcheck shell=sh
# kubeadm writes kubelet.conf early; a run that failed after it left a half-made node. Done
# means what kubeadm does last exists; half-done stops with the way out.
admin() { kubectl --kubeconfig /etc/kubernetes/admin.conf "$@"; }
already_done() { echo 'already done; kubeadm does not apply a changed configuration to a running node (kubeadm upgrade or a node replacement does)'; }
half_way() { echo "a previous $1 stopped half-way on this node: run \`kubeadm reset -f\` here (it removes what kubeadm made), then kubeha up again" >&2; exit 1; }
# After a failed kubeadm step (its exit status first): the kubelet's last log lines (kubeadm
# only says it waited for a healthy kubelet in vain; the reason is in the kubelet's log, which
# systemd's status shows), then that exit status. Tracing stops first, and kubeha's failure
# report skips the calls of report_* helpers, so it names the kubeadm command that failed.
report_kubelet() {
  { set +x; } 2>/dev/null
  echo "the kubelet's last log lines (systemctl status kubelet):" >&2
  systemctl status kubelet --no-pager --full --lines=3 2>&1 | tail -n 3 >&2
  exit "$1"
}
# The same for a kubeadm step that had begun to change the node, with the way out.
report_half_way() {
  { set +x; } 2>/dev/null
  echo "$2 stopped half-way on this node: fix the cause, run \`kubeadm reset -f\` here, then kubeha up again" >&2
  report_kubelet "$1"
}
