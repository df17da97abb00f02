# shellcheck shell=sh
# Takes HOLD, MANIFESTS, STATIC (held static pods to start again) and UNIT (a systemd unit to
# start, or ""). Returns at once: the caller waits for health where it needs to.
for p in $STATIC; do
  if [ -f "$HOLD/$p.yaml" ]; then mv -f "$HOLD/$p.yaml" "$MANIFESTS/$p.yaml"; fi
done
rmdir "$HOLD" 2>/dev/null || true
if [ -n "$UNIT" ]; then systemctl start "$UNIT"; fi
