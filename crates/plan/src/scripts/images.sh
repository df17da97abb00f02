# shellcheck shell=sh
# Takes SOCK (containerd's socket) and IMAGES: space-separated `name,archive` pairs (image
# names have no commas or spaces). Imports each image containerd's k8s.io namespace lacks.
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
