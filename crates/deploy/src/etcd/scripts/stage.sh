# shellcheck shell=sh
# Takes SIZE and SHA (of the snapshot on stdin), NAME, PEER_URL, CLUSTER, TOKEN (the member
# and its cluster, as the inventory has them) and DATA_DIR. Restores the snapshot into
# $DATA_DIR.kubeha-restore beside the live data, which it does not touch.
command -v etcdutl >/dev/null || { echo 'etcdutl is not installed on this node: install etcdutl 3.5 or newer (packages.source: kubeha-bundle ships it)' >&2; exit 3; }
umask 077
d=/var/lib/kubeha/etcd-restore
mkdir -p "$d"
rm -f "$d/snapshot.db"
head -c "$SIZE" > "$d/snapshot.db"
[ "$(sha256sum < "$d/snapshot.db" | cut -c1-64)" = "$SHA" ] || { rm -f "$d/snapshot.db"; echo 'the snapshot arrived damaged (its sha256 differs from the file sent)' >&2; exit 1; }
rm -rf "$DATA_DIR.kubeha-restore"
# A revision far above the old one, marked compacted: watchers and informers list again
# instead of trusting a cache that is newer than the restored data (Kubernetes' advice).
etcdutl snapshot restore "$d/snapshot.db" --name "$NAME" --initial-cluster "$CLUSTER" \
  --initial-cluster-token "$TOKEN" --initial-advertise-peer-urls "$PEER_URL" \
  --data-dir "$DATA_DIR.kubeha-restore" --bump-revision 1000000000 --mark-compacted >&2
rm -f "$d/snapshot.db"
echo staged
