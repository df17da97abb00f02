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
  # starts with state `existing` and the cluster as it is now. Nobody answering means a new
  # cluster. Members that answer without a quorum may be restarting in this same run (or be
  # new themselves, started a moment earlier): waited for, then taken as a new cluster.
  rm -f "$JOIN_ENV"
  self="https://$ADDRESS:2380"
  joined='' seen=''
  # Bounded: 20 rounds, 2 s apart.
  for _ in $(seq 1 20); do
    for m in $OTHERS; do
      url=${m#*=}; client="${url%:2380}:2379"
      rc=0; health=$(ecurl --max-time 3 "$client/health" 2>/dev/null) || rc=$?
      case $rc in 0) ;; 7|28|35) continue ;; *) seen=1; continue ;; esac
      seen=1
      case "$health" in *'"health":"true"'*) ;; *) continue ;; esac
      list=$(ecurl --max-time 10 -X POST -d '{}' "$client/v3/cluster/member/list" 2>/dev/null) || continue
      case "$list" in *"\"$self\""*) joined=$list; break 2 ;; esac
      ecurl --max-time 30 -X POST -d "{\"peerURLs\": [\"$self\"]}" "$client/v3/cluster/member/add" >/dev/null || true
    done
    [ -n "$seen" ] || break
    sleep 2
  done
  if [ -n "$joined" ]; then
    cluster="$NAME=$self"
    for m in $OTHERS; do
      case "$joined" in *"\"${m#*=}\""*) cluster="$cluster,$m" ;; esac
    done
    mkdir -p "$(dirname "$JOIN_ENV")"
    printf 'ETCD_INITIAL_CLUSTER=%s\nETCD_INITIAL_CLUSTER_STATE=existing\n' "$cluster" > "$JOIN_ENV"
    echo "joining the running etcd cluster as $cluster"
  elif [ -n "$seen" ]; then
    echo "etcd members answer but none was healthy for 40 s: starting $NAME as a member of a new cluster" >&2
  fi
fi
systemctl daemon-reload
systemctl enable etcd >/dev/null 2>&1
# A changed unit or certificate only takes effect on a restart.
systemctl restart etcd
for _ in $(seq 1 60); do ecurl --max-time 2 "https://$ADDRESS:2379/health" 2>/dev/null | grep -q '"health":"true"' && exit 0; sleep 1; done; echo 'etcd did not become healthy in 60 s (a member needs a quorum of its peers: are they started and reachable on 2380?)' >&2; exit 1
