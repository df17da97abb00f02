# shellcheck shell=sh
# Takes ROUTES (the pod-routes script kubeha wrote) and UNIT (its boot unit's name).
systemctl daemon-reload
systemctl enable "$UNIT" >/dev/null 2>&1 || true
"$ROUTES"
