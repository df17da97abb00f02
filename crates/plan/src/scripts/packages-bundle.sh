# shellcheck shell=sh
# Takes DIR (where the bundle's .deb files are) and VERSION (x.y.z).
ls "$DIR"/*.deb >/dev/null 2>&1 || { echo 'the bundle has no .deb files' >&2; exit 1; }
dpkg -i --force-confold "$DIR"/*.deb
apt-mark hold kubelet kubeadm kubectl >/dev/null
have=$(kubeadm version -o short)
[ "$have" = "v$VERSION" ] || { echo "the bundle installed kubeadm $have, the inventory says v$VERSION" >&2; exit 1; }
