# shellcheck shell=sh
# Takes CONFIG (kubeadm's join configuration) and the kubeadm.sh functions.
if [ -f /etc/kubernetes/kubelet.conf ]; then already_done; exit 0; fi
# A join that stopped before the kubelet got its client certificate left kubeadm's files
# (the cluster CA it discovered, the bootstrap kubeconfig, which kubeadm removes itself when
# it gives up) but no kubelet.conf: the node never registered and holds nothing of the
# cluster's (no etcd member, no Node object), so kubeadm's own reset is safe and the join
# starts over. kubeha puts no file there on a worker. (A control-plane node is left to the
# operator.)
if [ -f /etc/kubernetes/bootstrap-kubelet.conf ] || [ -f /etc/kubernetes/pki/ca.crt ]; then
  echo 'a previous kubeadm join stopped before the kubelet got its certificate: kubeadm reset -f, then joining again' >&2
  kubeadm reset -f >/dev/null 2>&1 || half_way 'kubeadm join'
fi
kubeadm join --config "$CONFIG" || report_kubelet $?
