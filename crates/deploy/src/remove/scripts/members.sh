# shellcheck shell=sh
# Takes ENDPOINT (a healthy member's client URL). Prints etcd's member list as JSON (the v3 gRPC
# gateway that every etcd since 3.4 serves, so neither etcdctl nor jq is needed on the node).
curl -fsS --max-time 10 --cacert /etc/kubernetes/pki/etcd/ca.crt \
  --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt --key /etc/kubernetes/pki/etcd/healthcheck-client.key \
  -X POST -d '{}' "$ENDPOINT/v3/cluster/member/list"
