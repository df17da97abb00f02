# shellcheck shell=sh
# Takes CONFIG (kubeadm's join configuration) and the kubeadm.sh functions.
if [ -f /etc/kubernetes/kubelet.conf ]; then already_done; exit 0; fi
if [ -f /etc/kubernetes/bootstrap-kubelet.conf ]; then half_way 'kubeadm join'; fi
kubeadm join --config "$CONFIG"
