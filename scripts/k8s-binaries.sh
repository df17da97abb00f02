#!/usr/bin/env bash
# Builds (or reuses from the cache) one Kubernetes release's binaries from upstream source with
# the Go toolchain, plus etcd/etcdctl 3.6 and the pause binary:
#
#   scripts/k8s-binaries.sh [VERSION]      # default: v1.34.4, the newest served v1.34 patch
#
# Output: $KUBEHA_CACHE/k8s/VERSION/{kubeadm,kubelet,kubectl,kube-apiserver,
# kube-controller-manager,kube-scheduler,kube-proxy,etcd,etcdctl,pause,SHA256SUMS,VERSIONS}.
# The last line printed is that directory. Nothing here is committed to the repository.
#
# Why a wrapper module: upstream's go.mod replaces its staging modules (k8s.io/api, …) with
# ./staging paths, so `go install k8s.io/kubernetes/cmd/kubeadm@vX` is refused. A module of
# our own requires k8s.io/kubernetes vX and replaces each staging module with its published
# v0.Y.Z, which is the same source.
set -euo pipefail

VERSION="${1:-${KUBEHA_K8S_VERSION:-v1.34.4}}"
ETCD_VERSION="${KUBEHA_ETCD_VERSION:-v3.6.16}"
CACHE="${KUBEHA_CACHE:-/var/cache/kubeha}"
OUT="$CACHE/k8s/$VERSION"
BINARIES=(kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)

die() { echo "k8s-binaries: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

case "$VERSION" in
  v1.[0-9]*.[0-9]*) ;;
  *) die "VERSION '$VERSION' is not a Kubernetes release like v1.34.4" ;;
esac

# Warm cache: every file present and matching its recorded digest.
if [ -f "$OUT/SHA256SUMS" ] && (cd "$OUT" && sha256sum --quiet --check SHA256SUMS >/dev/null 2>&1); then
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
[ -d "$src" ] && [ -f "$gomod" ] || die "the module proxy gave no source for k8s.io/kubernetes@$VERSION"

staging_version="v0.${VERSION#v1.}"
work=$(mktemp -d "${TMPDIR:-/tmp}/kubeha-k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tmp_out="$OUT.partial"
rm -rf "$tmp_out"
mkdir -p "$tmp_out"

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
minor="${VERSION#v1.}"; minor="${minor%%.*}"
build_date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)
commit=$(echo "$info" | sed -n 's/.*"Hash": "\([0-9a-f]*\)".*/\1/p')
commit="${commit:-0000000000000000000000000000000000000000}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

started=$(date +%s)
log "building ${BINARIES[*]} $VERSION (a cold build takes 20-40 minutes on 2 cores)"
pkgs=()
for b in "${BINARIES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
(cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$tmp_out/" "${pkgs[@]}") ||
  die "go build of Kubernetes $VERSION failed (see the output above)"

log "building etcd and etcdctl $ETCD_VERSION"
mkdir -p "$work/etcd"
cat >"$work/etcd/go.mod" <<EOF
module kubeha.invalid/etcdbuild

go 1.24

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/etcdctl/v3 $ETCD_VERSION
)
EOF
(cd "$work/etcd" &&
  go build -trimpath -ldflags "-s -w" -o "$tmp_out/etcd" go.etcd.io/etcd/server/v3 &&
  go build -trimpath -ldflags "-s -w" -o "$tmp_out/etcdctl" go.etcd.io/etcd/etcdctl/v3) ||
  die "go build of etcd $ETCD_VERSION failed (see the output above)"

log "building pause from $src/build/pause/linux/pause.c"
pause_version=$(sed -n 's/^TAG ?= *//p' "$src/build/pause/Makefile" 2>/dev/null || true)
gcc -Os -Wall -Werror -static -DVERSION="v${pause_version:-3.10.1}-kubeha" \
  -o "$tmp_out/pause" "$src/build/pause/linux/pause.c" ||
  die "gcc -static of pause.c failed (apt-get install gcc libc6-dev)"
strip "$tmp_out/pause" 2>/dev/null || true

# What each binary says it is: checked, so a missing stamp fails here and not in kubeadm.
"$tmp_out/kubeadm" version -o short | grep -qx "$VERSION" || die "kubeadm does not report $VERSION"
"$tmp_out/kubelet" --version | grep -q "$VERSION" || die "kubelet does not report $VERSION"
{
  echo "kubernetes $VERSION"
  echo "etcd $ETCD_VERSION"
  echo "pause ${pause_version:-3.10.1}"
  echo "go $(go env GOVERSION)"
  echo "built $build_date in $(($(date +%s) - started)) s"
} >"$tmp_out/VERSIONS"
(cd "$tmp_out" && sha256sum "${BINARIES[@]}" etcd etcdctl pause VERSIONS >SHA256SUMS)

rm -rf "$OUT"
mv "$tmp_out" "$OUT"
log "built in $(($(date +%s) - started)) s; $(du -sh "$OUT" | cut -f1) in $OUT"
echo "$OUT"
