# shellcheck shell=sh
# Takes POD_CIDR.
curl -fsSL https://github.com/flannel-io/flannel/releases/download/v0.26.7/kube-flannel.yml -o /etc/kubeha/kube-flannel.yml
sed -i "s#10.244.0.0/16#$POD_CIDR#g" /etc/kubeha/kube-flannel.yml
kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f /etc/kubeha/kube-flannel.yml
