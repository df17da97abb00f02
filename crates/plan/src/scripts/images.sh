# shellcheck shell=sh
# Takes DIR (the kubeha bundle on this node), SOCK (containerd's socket) and IMAGES:
# space-separated `name,archive` pairs (image names have no commas or spaces). Checks the
# archives this node received against the bundle's SHA256SUMS first (a damaged one is named
# and nothing is imported), then imports each image containerd's k8s.io namespace lacks.
( cd "$DIR" && grep ' images/' SHA256SUMS | sha256sum -c --quiet --ignore-missing ) || { echo "an image archive in $DIR does not match SHA256SUMS (named above): nothing imported; run again" >&2; exit 1; }
i=0
until ctr --address "$SOCK" version >/dev/null 2>&1; do
  i=$((i + 1))
  [ "$i" -le 150 ] || { echo "containerd does not answer on $SOCK after 15 s (see its log)" >&2; exit 1; }
  sleep 0.1
done
have=$(ctr --address "$SOCK" -n k8s.io images ls -q)
for entry in $IMAGES; do
  name=${entry%%,*}
  archive=${entry#*,}
  printf '%s\n' "$have" | grep -qxF "$name" && continue
  ctr --address "$SOCK" -n k8s.io images import "$archive" >/dev/null || { echo "cannot import $name from $archive" >&2; exit 1; }
  echo "imported $name"
done
