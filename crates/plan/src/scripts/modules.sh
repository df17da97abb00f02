# shellcheck shell=sh
# Takes MODULES (space-separated) and have_mod.
for m in $MODULES; do modprobe "$m" 2>/dev/null || have_mod "$m" || { echo "kernel module $m cannot be loaded" >&2; exit 1; }; done
