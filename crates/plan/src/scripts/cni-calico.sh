# shellcheck shell=sh
# Takes POD_CIDR.
kubectl --kubeconfig /etc/kubernetes/admin.conf apply --server-side -f https://raw.githubusercontent.com/projectcalico/calico/v3.29.3/manifests/tigera-operator.yaml
kubectl --kubeconfig /etc/kubernetes/admin.conf wait --for=condition=Established crd/installations.operator.tigera.io --timeout=120s
cat <<EOF | kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f -
apiVersion: operator.tigera.io/v1
kind: Installation
metadata:
  name: default
spec:
  calicoNetwork:
    ipPools:
    - cidr: $POD_CIDR
      encapsulation: VXLANCrossSubnet
      natOutgoing: Enabled
      nodeSelector: all()
EOF
