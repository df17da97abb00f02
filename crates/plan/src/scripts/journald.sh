# shellcheck shell=sh
# Takes STORAGE (journald's Storage=). The drop-in is in place; journald reads it on restart.
if [ "$STORAGE" = persistent ]; then mkdir -p /var/log/journal; fi
if systemctl is-active systemd-journald >/dev/null 2>&1; then
  systemctl restart systemd-journald
  echo "journald restarted with storage $STORAGE"
else
  echo "journald is not running here; the drop-in applies when it starts"
fi
