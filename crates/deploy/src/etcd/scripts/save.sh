# shellcheck shell=sh
# Takes ENDPOINT (this member's client URL) and SNAP (a scratch path). Writes the snapshot to
# stdout and nothing else; what etcdctl and etcdutl say goes to stderr.
command -v etcdctl >/dev/null || { echo 'etcdctl is not installed on this node: install etcdctl 3.5 or newer (packages.source: kubeha-bundle ships it)' >&2; exit 3; }
umask 077
mkdir -p "$(dirname "$SNAP")"
rm -f "$SNAP" "$SNAP.part"
trap 'rm -f "$SNAP" "$SNAP.part"' EXIT
ETCDCTL_API=3 etcdctl --endpoints="$ENDPOINT" --cacert=/etc/kubernetes/pki/etcd/ca.crt \
  --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key \
  --dial-timeout=3s --command-timeout=300s snapshot save "$SNAP" >&2
if command -v etcdutl >/dev/null; then etcdutl snapshot status "$SNAP" -w json 2>/dev/null | sed 's/^/kubeha-status /' >&2 || true; fi
cat "$SNAP"
