# shellcheck shell=sh
# Takes PORTS (space-separated) and have_mod. Prints `fact <key> <value...>` lines for the
# cross-node checks; plan::facts parses them.
kver=$(uname -r | cut -d. -f1); [ "$kver" -ge 4 ] || { echo "kernel $(uname -r) is older than 4.x" >&2; exit 1; }
for m in overlay br_netfilter; do have_mod "$m" || { echo "kernel module $m is neither built in nor loadable" >&2; exit 1; }; done
# One listing for every port (ss -p walks every process's fds: once, not once per port).
listening=$(ss -Hltnp)
for p in $PORTS; do u=$(printf '%s\n' "$listening" | awk -v p="$p" '{ n = split($4, a, ":"); if (a[n] == p) print }'); [ -z "$u" ] && continue; echo "$u" | grep -Eq '"(kube-apiserver|kube-controller|kube-scheduler|kubelet|etcd|kubeha|haproxy)"' || { echo "port $p is in use by: $u" >&2; exit 1; }; done
fact() { echo "fact $*"; }
fact hostname "$(hostname)"
fact uuid "$(cat /sys/class/dmi/id/product_uuid 2>/dev/null || echo unknown)"
fact machine-id "$(cat /etc/machine-id 2>/dev/null || echo unknown)"
ip -o link | awk '$2 != "lo:" && $2 !~ /^(cali|flannel|cni|veth|docker|kube-|vxlan|tunl|cilium|lxc|br-|virbr)/ { for (i = 1; i < NF; i++) if ($i == "link/ether" && $(i+1) != "ee:ee:ee:ee:ee:ee") { sub(":$", "", $2); sub("@.*", "", $2); print "fact mac", $2, $(i+1) } }'
swapon --show=NAME --noheadings 2>/dev/null | sed 's/^/fact swap /'
fact timesync "$(timedatectl show -p NTPSynchronized --value 2>/dev/null || echo unknown)"
fact runtime "$(containerd --version 2>/dev/null | awk '{print $3}' || true)"
fact kubeadm "$(kubeadm version -o short 2>/dev/null || true)"
