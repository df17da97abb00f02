# shellcheck shell=sh
# Takes INSTALL (yes: chrony may be installed from the repository; no: offline, the node must
# have it). A time sync service that already runs is kept: etcd and certificates need the
# clocks in step, not a particular client.
running=
for s in chrony chronyd systemd-timesyncd ntp ntpd ntpsec openntpd; do
  if [ -z "$running" ] && systemctl is-active "$s" >/dev/null 2>&1; then running=$s; fi
done
if [ -n "$running" ]; then
  echo "time sync: $running runs"
else
  if ! command -v chronyd >/dev/null 2>&1; then
    if [ "$INSTALL" != yes ]; then
      echo "kubeha: no time sync service runs and chrony is not installed: install chrony (or another NTP client) on the node, or set host.time_sync: none in the inventory" >&2
      false
    fi
    DEBIAN_FRONTEND=noninteractive apt_install chrony
  fi
  systemctl enable --now chrony 2>/dev/null || systemctl enable --now chronyd
  echo "time sync: chrony enabled"
fi
