# shellcheck shell=sh
# Takes VERSION (x.y.z). Reports what is missing; `up` stops before the first kubeadm step
# when kubeadm is absent.
for t in containerd kubelet kubeadm kubectl; do command -v "$t" >/dev/null || echo "$t is not installed (packages.source is preinstalled)"; done
have=$(kubeadm version -o short 2>/dev/null || true); [ -z "$have" ] || [ "$have" = "v$VERSION" ] || echo "kubeadm is $have, the inventory says v$VERSION"
