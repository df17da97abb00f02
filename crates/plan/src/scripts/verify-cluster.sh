# shellcheck shell=sh
# Takes WANT (how many nodes the inventory has) and ENDPOINT (the VIP's host:port).
for _ in $(seq 1 120); do
  if out=$(kubectl --kubeconfig /etc/kubernetes/admin.conf --server "https://$ENDPOINT" get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}'); then
    ready=$(printf '%s\n' "$out" | grep -c '^True$' || true)
    [ "$ready" -ge "$WANT" ] && { echo "$ready of $WANT nodes Ready through https://$ENDPOINT"; exit 0; }
  fi
  sleep 5
done
echo "not every node is Ready through https://$ENDPOINT after 10 minutes (${ready:-0} of $WANT): kubectl get nodes there tells which" >&2; exit 1
