# shellcheck shell=sh
# Takes HOLD (a directory outside the kubelet's manifest directory MANIFESTS), STATIC (the
# static pods to stop, e.g. "kube-apiserver etcd") and UNIT (a systemd unit to stop, or "").
# Moves their manifests aside so the kubelet stops them, and waits until their containers are
# gone (at most 120 s). A manifest already held (a re-run) stays held.
mkdir -p "$HOLD"
for p in $STATIC; do
  if [ -f "$MANIFESTS/$p.yaml" ]; then mv -f "$MANIFESTS/$p.yaml" "$HOLD/$p.yaml"; fi
done
if [ -n "$UNIT" ]; then systemctl stop "$UNIT"; fi
[ -n "$STATIC" ] || exit 0
names="^($(echo "$STATIC" | tr ' ' '|'))\$"
for _ in $(seq 1 120); do
  if left=$(crictl ps -q --name "$names" 2>/dev/null) && [ -z "$left" ]; then exit 0; fi
  sleep 1
done
echo "the kubelet did not stop $STATIC within 120 s (their manifests are in $HOLD): is the kubelet running?" >&2
exit 1
