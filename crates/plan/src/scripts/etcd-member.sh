# shellcheck shell=sh
# Takes DATA_DIR, ADDRESS (this member's address), NAME, OTHERS (name=peer URL of every other
# member in the inventory, space-separated) and JOIN_ENV.
command -v etcd >/dev/null || { echo 'etcd is not installed here: install etcd (server and etcdctl) on the etcd nodes, or use etcd.topology: stacked' >&2; exit 1; }
mkdir -p "$DATA_DIR" && chmod 700 "$DATA_DIR"
# curl with the health-check client certificate every member has.
ecurl() { curl -fsS --cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt --key /etc/kubernetes/pki/etcd/healthcheck-client.key "$@"; }
if [ ! -d "$DATA_DIR/member" ]; then
  # No data yet: a member of a new cluster (the initial env file says so), or one added to a
  # cluster that runs already. That one is added first (etcd's runtime reconfiguration) and
  # starts with state `existing` and the cluster as it is now.
  rm -f "$JOIN_ENV"
  list='' via=''
  for m in $OTHERS; do
    url=${m#*=}; client="${url%:2380}:2379"
    if ecurl --max-time 3 "$client/health" 2>/dev/null | grep -q '"health":"true"'; then
        list=$(ecurl --max-time 10 -X POST -d '{}' "$client/v3/cluster/member/list") && via=$client && break
    fi
  done
  if [ -n "$via" ]; then
    self="https://$ADDRESS:2380"
    case "$list" in
      *"\"$self\""*) ;;
      *)
            ecurl --max-time 30 -X POST -d "{\"peerURLs\": [\"$self\"]}" "$via/v3/cluster/member/add" >/dev/null \
          || { echo "etcd member add for $self through $via failed: is the cluster healthy?" >&2; exit 1; }
            list=$(ecurl --max-time 10 -X POST -d '{}' "$via/v3/cluster/member/list") ;;
    esac
    cluster="$NAME=$self"
    for m in $OTHERS; do
      case "$list" in *"\"${m#*=}\""*) cluster="$cluster,$m" ;; esac
    done
    mkdir -p "$(dirname "$JOIN_ENV")"
    printf 'ETCD_INITIAL_CLUSTER=%s\nETCD_INITIAL_CLUSTER_STATE=existing\n' "$cluster" > "$JOIN_ENV"
    echo "joining the running etcd cluster through $via as $cluster"
  fi
fi
systemctl daemon-reload
systemctl enable etcd >/dev/null 2>&1
# A changed unit or certificate only takes effect on a restart.
systemctl restart etcd
for _ in $(seq 1 60); do ecurl --max-time 2 "https://$ADDRESS:2379/health" 2>/dev/null | grep -q '"health":"true"' && exit 0; sleep 1; done; echo 'etcd did not become healthy in 60 s (a member needs a quorum of its peers: are they started and reachable on 2380?)' >&2; exit 1
