# shellcheck shell=sh
# Takes ENDPOINT (a healthy member's client URL) and ID (the member's ID, decimal).
curl -fsS --max-time 30 --cacert /etc/kubernetes/pki/etcd/ca.crt \
  --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt --key /etc/kubernetes/pki/etcd/healthcheck-client.key \
  -X POST -d "{\"ID\": \"$ID\"}" "$ENDPOINT/v3/cluster/member/remove"
