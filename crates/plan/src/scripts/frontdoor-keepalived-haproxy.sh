# shellcheck shell=sh
# Takes HAPROXY_CFG, KEEPALIVED_CONF, PORT (the VIP port haproxy binds) and apt_install.
if ! { command -v keepalived >/dev/null && command -v haproxy >/dev/null; }; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt_install keepalived haproxy curl
fi
haproxy -c -q -f "$HAPROXY_CFG"
keepalived -t -f "$KEEPALIVED_CONF"
systemctl enable haproxy keepalived >/dev/null 2>&1
systemctl restart haproxy keepalived
# A restart that "worked" is not a running haproxy (it exits after the unit started, e.g. when
# maxconn needs more open files than the host's hard limit): it must be listening.
i=0
until ss -Hltn "sport = :$PORT" | grep -q .; do
  i=$((i + 1))
  [ "$i" -le 100 ] || { echo "haproxy is not listening on :$PORT 10 s after its restart: \`systemctl status haproxy\` and its log say why (a frontdoor.max_connections above what the open-file limit allows is one cause)" >&2; exit 1; }
  sleep 0.1
done
