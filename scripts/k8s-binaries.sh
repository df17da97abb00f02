#!/usr/bin/env bash
# Builds (or reuses from the cache) one Kubernetes release's binaries from upstream source with
# the Go toolchain, plus etcd/etcdctl/etcdutl 3.6 and the pause binary:
#
#   scripts/k8s-binaries.sh [VERSION]      # default: v1.34.4, the newest served v1.34 patch
#
# Output: $KUBEHA_CACHE/k8s/VERSION/{kubeadm,kubelet,kubectl,kube-apiserver,
# kube-controller-manager,kube-scheduler,kube-proxy,etcd,etcdctl,etcdutl,coredns,crictl,pause,
# SHA256SUMS,VERSIONS}. etcd, CoreDNS and pause are built at the versions this kubeadm names
# (its constants.go), so every image `kubeadm config images list` gives has a binary whose
# version matches the image's tag; crictl (cri-tools) is the CRI client for checks; etcdutl
# restores etcd snapshots (`kubeha etcd restore`). A cache that lacks only some add-ons (one
# made before an add-on was added here) keeps what it has and builds the rest.
# The last line printed is that directory. Nothing here is committed to the repository.
#
# Why a wrapper module: upstream's go.mod replaces its staging modules (k8s.io/api, …) with
# ./staging paths, so `go install k8s.io/kubernetes/cmd/kubeadm@vX` is refused. A module of
# our own requires k8s.io/kubernetes vX and replaces each staging module with its published
# v0.Y.Z, which is the same source.
set -euo pipefail

VERSION="${1:-${KUBEHA_K8S_VERSION:-v1.34.4}}"
CACHE="${KUBEHA_CACHE:-/var/cache/kubeha}"
OUT="$CACHE/k8s/$VERSION"
BINARIES=(kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
EXTRA=(etcd etcdctl etcdutl coredns crictl pause)

die() { echo "k8s-binaries: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

case "$VERSION" in
  v1.[0-9]*.[0-9]*) ;;
  *) die "VERSION '$VERSION' is not a Kubernetes release like v1.34.4" ;;
esac

# Warm cache: every binary listed, present and matching its recorded digest.
complete() {
  [ -f "$OUT/SHA256SUMS" ] || return 1
  for b in "${BINARIES[@]}" "${EXTRA[@]}"; do grep -q "  $b\$" "$OUT/SHA256SUMS" || return 1; done
  (cd "$OUT" && sha256sum --quiet --check SHA256SUMS >/dev/null 2>&1)
}
if complete; then
  log "reusing $OUT"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || die "the Go toolchain is not installed (install Go 1.24 or newer)"
command -v gcc >/dev/null || die "gcc is not installed (apt-get install gcc libc6-dev); it builds pause"

export GOFLAGS="-mod=mod" CGO_ENABLED=0 GOTOOLCHAIN=local
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"

log "checking the Go module proxy for k8s.io/kubernetes $VERSION"
info=$(timeout 60 go mod download -json "k8s.io/kubernetes@$VERSION" 2>&1) ||
  die "cannot download k8s.io/kubernetes@$VERSION from the Go module proxy ($GOPROXY): $(echo "$info" | grep -m1 -iE 'error|refused|timeout|not found' || echo "$info" | tail -1)"
src=$(echo "$info" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
gomod=$(echo "$info" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
if [ ! -d "$src" ] || [ ! -f "$gomod" ]; then die "the module proxy gave no source for k8s.io/kubernetes@$VERSION"; fi

minor="${VERSION#v1.}"; minor="${minor%%.*}"
staging_version="v0.${VERSION#v1.}"
# The versions of the add-on images this kubeadm deploys, from its own constants.
constants="$src/cmd/kubeadm/app/constants/constants.go"
const() { sed -n "s/^[[:space:]]*$1[[:space:]]*= \"\(.*\)\"/\1/p" "$constants" | head -1; }
etcd_tag=$(const DefaultEtcdVersion); coredns_tag=$(const CoreDNSVersion); pause_tag=$(const PauseVersion)
if [ -z "$etcd_tag" ] || [ -z "$coredns_tag" ] || [ -z "$pause_tag" ]; then
  die "cannot read etcd/CoreDNS/pause versions from $constants"
fi
ETCD_VERSION="${KUBEHA_ETCD_VERSION:-v${etcd_tag%-*}}"
COREDNS_VERSION="v${coredns_tag#v}"
CRICTL_VERSION="${KUBEHA_CRICTL_VERSION:-v1.$minor.0}"
work=$(mktemp -d "${TMPDIR:-/tmp}/kubeha-k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tmp_out="$OUT.partial"
rm -rf "$tmp_out"
mkdir -p "$tmp_out"
# What an older cache already holds, verified: kept, not built again.
if [ -f "$OUT/SHA256SUMS" ] && (cd "$OUT" && sha256sum --quiet --check SHA256SUMS >/dev/null 2>&1); then
  while read -r _ b; do [ "$b" = VERSIONS ] || cp -p "$OUT/$b" "$tmp_out/$b"; done <"$OUT/SHA256SUMS"
fi
have() { for b in "$@"; do [ -f "$tmp_out/$b" ] || return 1; done; }

# The wrapper module: require kubernetes, replace every staging module upstream lists.
{
  echo "module kubeha.invalid/k8sbuild"
  echo
  echo "go 1.24"
  echo
  echo "require k8s.io/kubernetes $VERSION"
  echo
  sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#replace \1 => \1 '"$staging_version"'#p' "$gomod"
} >"$work/go.mod"
grep -q '^replace k8s.io/api ' "$work/go.mod" || die "found no staging modules in upstream's go.mod ($gomod)"

# Version stamps as hack/lib/version.sh sets them; unstamped binaries say v0.0.0 and kubeadm's
# kubelet version check fails.
build_date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)
commit=$(echo "$info" | sed -n 's/.*"Hash": "\([0-9a-f]*\)".*/\1/p')
commit="${commit:-0000000000000000000000000000000000000000}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

started=$(date +%s)
if have "${BINARIES[@]}"; then
  log "reusing ${BINARIES[*]} $VERSION from $OUT"
else
  log "building ${BINARIES[*]} $VERSION (a cold build takes 20-40 minutes on 2 cores)"
  pkgs=()
  for b in "${BINARIES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$tmp_out/" "${pkgs[@]}") ||
    die "go build of Kubernetes $VERSION failed (see the output above)"
fi

# A wrapper module per add-on: require it, build its main package. Their go.mod files'
# replace directives are ignored in a dependency, which is what we want.
build_module() { # name module version out package...
  local name=$1 module=$2 version=$3; shift 3
  local outs=(); local i; for ((i = 1; i <= $#; i += 2)); do outs+=("${!i}"); done
  if have "${outs[@]}"; then log "reusing ${outs[*]}"; return 0; fi
  mkdir -p "$work/$name"
  printf 'module kubeha.invalid/%sbuild\n\ngo 1.24\n\nrequire %s %s\n' "$name" "$module" "$version" >"$work/$name/go.mod"
  while [ $# -gt 0 ]; do
    (cd "$work/$name" && go build -trimpath -ldflags "${LDFLAGS_EXTRA:-} -s -w" -o "$tmp_out/$1" "$2") ||
      die "go build of $2@$version failed (see the output above)"
    shift 2
  done
}
log "building etcd, etcdctl and etcdutl $ETCD_VERSION (kubeadm's etcd image is $etcd_tag)"
build_module etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" etcd go.etcd.io/etcd/server/v3
build_module etcdctl go.etcd.io/etcd/etcdctl/v3 "$ETCD_VERSION" etcdctl go.etcd.io/etcd/etcdctl/v3
build_module etcdutl go.etcd.io/etcd/etcdutl/v3 "$ETCD_VERSION" etcdutl go.etcd.io/etcd/etcdutl/v3
log "building CoreDNS $COREDNS_VERSION"
build_module coredns github.com/coredns/coredns "$COREDNS_VERSION" coredns github.com/coredns/coredns
log "building crictl $CRICTL_VERSION"
LDFLAGS_EXTRA="-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
  build_module crictl sigs.k8s.io/cri-tools "$CRICTL_VERSION" crictl sigs.k8s.io/cri-tools/cmd/crictl

if ! have pause; then
  log "building pause from $src/build/pause/linux/pause.c"
  gcc -Os -Wall -Werror -static -DVERSION="v$pause_tag-kubeha" \
    -o "$tmp_out/pause" "$src/build/pause/linux/pause.c" ||
    die "gcc -static of pause.c failed (apt-get install gcc libc6-dev)"
  strip "$tmp_out/pause" 2>/dev/null || true
fi

# What each binary says it is: checked, so a missing stamp fails here and not in kubeadm.
"$tmp_out/kubeadm" version -o short | grep -qx "$VERSION" || die "kubeadm does not report $VERSION"
"$tmp_out/kubelet" --version | grep -q "$VERSION" || die "kubelet does not report $VERSION"
{
  echo "kubernetes $VERSION"
  echo "etcd $ETCD_VERSION"
  echo "coredns $COREDNS_VERSION"
  echo "crictl $CRICTL_VERSION"
  echo "pause $pause_tag"
  echo "go $(go env GOVERSION)"
  echo "built $build_date in $(($(date +%s) - started)) s"
} >"$tmp_out/VERSIONS"
(cd "$tmp_out" && sha256sum "${BINARIES[@]}" "${EXTRA[@]}" VERSIONS >SHA256SUMS)

rm -rf "$OUT"
mv "$tmp_out" "$OUT"
log "built in $(($(date +%s) - started)) s; $(du -sh "$OUT" | cut -f1) in $OUT"
echo "$OUT"
