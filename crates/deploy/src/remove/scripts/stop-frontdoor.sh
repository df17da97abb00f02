# shellcheck shell=sh
# Takes UNITS (the front door's units). A stopped builtin front door that held the VIP says
# priority 0 first, so a peer takes the VIP at once (RFC 5798 6.4.3).
for u in $UNITS; do
  if systemctl is-enabled "$u" >/dev/null 2>&1 || systemctl is-active "$u" >/dev/null 2>&1; then
    systemctl disable "$u" >/dev/null 2>&1 || true
    systemctl stop "$u"
  fi
done
