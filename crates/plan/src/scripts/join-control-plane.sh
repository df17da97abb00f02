# shellcheck shell=sh
# Takes CONFIG (kubeadm's join configuration), NODE (this node's name) and the kubeadm.sh
# functions. Done means the node carries the control-plane label.
if [ -f /etc/kubernetes/kubelet.conf ] && [ -f /etc/kubernetes/admin.conf ] && admin get node "$NODE" -o jsonpath='{.metadata.labels}' 2>/dev/null | grep -q node-role.kubernetes.io/control-plane; then already_done; exit 0; fi
if [ -f /etc/kubernetes/kubelet.conf ] || [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; then half_way 'kubeadm join --control-plane'; fi
kubeadm join --config "$CONFIG" || report_half_way $? 'kubeadm join --control-plane'
