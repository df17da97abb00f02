# shellcheck shell=sh
# Takes KUBE (1: a kubeadm node), ETCD_DATA (an external member's data directory, or empty),
# STAMP. Undoes `kubeha up` on a node leaving the cluster: kubeadm reset (its etcd member is
# removed already, so that phase is skipped), an external member stopped and its data kept
# aside, and kubeha's records cleared so a later `kubeha up` installs the node afresh.
if [ "$KUBE" = 1 ] && command -v kubeadm >/dev/null; then
  kubeadm reset -f --skip-phases=remove-etcd-member 2>&1 | tail -n 20
fi
if [ -n "$ETCD_DATA" ]; then
  systemctl disable etcd >/dev/null 2>&1 || true
  systemctl stop etcd 2>/dev/null || true
  # Kept, inside the data directory (often a mount point of its own); etcd reads member/ only.
  if [ -d "$ETCD_DATA/member" ]; then mv "$ETCD_DATA/member" "$ETCD_DATA/member.kubeha-removed-$STAMP"; fi
fi
rm -rf /var/lib/kubeha/state
echo 'kubeha-reset-done'
