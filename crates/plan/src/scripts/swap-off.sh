# shellcheck shell=sh
swapoff -a
if grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then [ -e /etc/fstab.kubeha.bak ] || cp /etc/fstab /etc/fstab.kubeha.bak; sed -Ei '/^[^#].*[[:space:]]swap[[:space:]]/s/^/#kubeha# /' /etc/fstab; fi
if command -v systemctl >/dev/null; then for u in $(systemctl list-units --type=swap --state=active --plain --no-legend 2>/dev/null | awk '{print $1}'); do systemctl mask --now "$u" >/dev/null 2>&1 || true; done; fi
