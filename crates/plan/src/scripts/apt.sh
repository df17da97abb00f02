# shellcheck shell=sh
# apt-get that never stops at a config-file question: our files are kept (they are in place
# before the package, or the package is upgraded under them).
apt_install() { apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"; }
