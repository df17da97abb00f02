# shellcheck shell=sh
# have_mod NAME: the module is there if built in, loaded, or loadable. Containers and some
# kernels build overlay and br_netfilter in, with no modprobe or /lib/modules at all.
have_mod() { [ -d "/sys/module/$1" ] || { [ "$1" = br_netfilter ] && [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; } || grep -qw "$1" /proc/filesystems 2>/dev/null || { command -v modprobe >/dev/null && modprobe -n "$1" 2>/dev/null; }; }
