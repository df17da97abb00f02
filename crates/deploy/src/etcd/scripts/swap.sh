# shellcheck shell=sh
# Takes DATA_DIR and STAMP. Puts the restored member in place of the old one, which is kept in
# $DATA_DIR.kubeha-before-restore-$STAMP. The data directory itself stays (it may be a mount).
[ -d "$DATA_DIR.kubeha-restore/member" ] || { echo "no restored data in $DATA_DIR.kubeha-restore (run the restore again)" >&2; exit 1; }
mkdir -p "$DATA_DIR"
chmod 700 "$DATA_DIR"
if [ -d "$DATA_DIR/member" ]; then
  old="$DATA_DIR.kubeha-before-restore-$STAMP"
  mkdir -p "$old"
  chmod 700 "$old"
  mv "$DATA_DIR/member" "$old/member"
  echo "kept $old"
fi
mv "$DATA_DIR.kubeha-restore/member" "$DATA_DIR/member"
rm -rf "$DATA_DIR.kubeha-restore"
