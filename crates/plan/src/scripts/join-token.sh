# shellcheck shell=sh
# Takes TOKEN_FILE (this run's bootstrap token).
{ set +x; } 2>/dev/null # keep the token out of the trace
t=$(cat "$TOKEN_FILE")
kubeadm token list --kubeconfig /etc/kubernetes/admin.conf 2>/dev/null | awk 'NR > 1 {print $1}' | grep -qx "$t" || kubeadm token create "$t" --ttl 2h --description 'kubeha up' --kubeconfig /etc/kubernetes/admin.conf >/dev/null
