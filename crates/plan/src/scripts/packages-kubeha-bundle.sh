# shellcheck shell=sh
# Takes DIR (the kubeha bundle as uploaded to this node), BIN (where its binaries go) and
# VERSION (x.y.z). A node gets only what it runs (workers: no control-plane images), so the
# digest check skips files that are not there.
cd "$DIR" || exit 1
sha256sum -c --quiet --ignore-missing SHA256SUMS || { echo "the bundle in $DIR does not match its SHA256SUMS (a damaged upload): run again" >&2; exit 1; }
mkdir -p "$BIN"
for f in bin/*; do
  t="$BIN/${f#bin/}"
  # install unlinks first, so a running kubelet or etcd is replaced, not written into.
  cmp -s "$f" "$t" || { install -m 0755 "$f" "$t" && echo "installed $t"; }
done
systemctl daemon-reload
systemctl enable kubelet >/dev/null 2>&1 || true
have=$("$BIN/kubeadm" version -o short)
[ "$have" = "v$VERSION" ] || { echo "the bundle holds kubeadm $have, the inventory says v$VERSION" >&2; exit 1; }
