# shellcheck shell=sh
# Takes BIN (kubeha), INTERFACE, VRID and PEERS (the control-plane addresses, comma-separated).
"$BIN" frontdoor listen --interface "$INTERFACE" --vrid "$VRID" --duration 3s --ignore "$PEERS"
systemctl daemon-reload
systemctl enable kubeha-frontdoor >/dev/null 2>&1
systemctl restart kubeha-frontdoor
