# shellcheck shell=sh
# Takes VERSION (x.y.z), REPO (the repository URL) and apt_install.
export DEBIAN_FRONTEND=noninteractive
have=$(dpkg-query -W -f='${Version}' kubeadm 2>/dev/null || true)
case "$have" in "$VERSION"-*) exit 0 ;; esac
if [ -n "$have" ] && [ -f /etc/kubernetes/kubelet.conf ]; then echo "this node already runs Kubernetes $have; kubeha up does not upgrade a cluster: upgrade with kubeadm upgrade (control plane first), or set cluster.kubernetes_version back" >&2; exit 1; fi
apt-get update -q
apt_install apt-transport-https ca-certificates curl gpg conntrack ipvsadm
command -v containerd >/dev/null || apt_install containerd
mkdir -p /etc/apt/keyrings
curl -fsSL "$REPO/Release.key" -o /etc/apt/keyrings/kubernetes-apt-keyring.asc
gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg /etc/apt/keyrings/kubernetes-apt-keyring.asc
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $REPO/ /" > /etc/apt/sources.list.d/kubernetes.list
apt-get update -q
apt-mark unhold kubelet kubeadm kubectl >/dev/null 2>&1 || true
apt_install kubelet="$VERSION-*" kubeadm="$VERSION-*" kubectl="$VERSION-*"
apt-mark hold kubelet kubeadm kubectl >/dev/null
