# shellcheck shell=sh
# Takes DATA_DIR and ADDRESS (this member's client address).
command -v etcd >/dev/null || { echo 'etcd is not installed here: install etcd (server and etcdctl) on the etcd nodes, or use etcd.topology: stacked' >&2; exit 1; }
mkdir -p "$DATA_DIR" && chmod 700 "$DATA_DIR"
systemctl daemon-reload
systemctl enable etcd >/dev/null 2>&1
# A changed unit or certificate only takes effect on a restart.
systemctl restart etcd
for _ in $(seq 1 60); do curl -fsS --max-time 2 --cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt --key /etc/kubernetes/pki/etcd/healthcheck-client.key "https://$ADDRESS:2379/health" 2>/dev/null | grep -q '"health":"true"' && exit 0; sleep 1; done; echo 'etcd did not become healthy in 60 s (a member needs a quorum of its peers: are they started and reachable on 2380?)' >&2; exit 1
