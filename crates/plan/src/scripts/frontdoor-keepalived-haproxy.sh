# shellcheck shell=sh
# Takes HAPROXY_CFG, KEEPALIVED_CONF and apt_install.
if ! { command -v keepalived >/dev/null && command -v haproxy >/dev/null; }; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt_install keepalived haproxy curl
fi
haproxy -c -q -f "$HAPROXY_CFG"
keepalived -t -f "$KEEPALIVED_CONF"
systemctl enable haproxy keepalived >/dev/null 2>&1
systemctl restart haproxy keepalived
