# shellcheck shell=sh
systemctl daemon-reload
systemctl enable containerd >/dev/null 2>&1
systemctl restart containerd
