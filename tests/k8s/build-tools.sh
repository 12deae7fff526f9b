#!/usr/bin/env bash
# Builds the upstream tools that the Kubernetes e2e tests run against:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
# (k8s.io/kubernetes), the kubelet (k8s.io/kubernetes at the kubelet's own
# version, see versions.env), crictl (sigs.k8s.io/cri-tools), etcd
# (go.etcd.io/etcd/server/v3) and helm (helm.sh/helm/v4, and v3 as
# helm-<v3 version> for the chart's Helm 3 tests), from their published
# Go modules through the Go module proxy, into a cache dir outside git.
#
#   tests/k8s/build-tools.sh            build what is missing; print the bin dir
#   tests/k8s/build-tools.sh --oldest   the same for the oldest Kubernetes the
#                                       chart supports: its control plane only
#                                       (etcd, kube-apiserver,
#                                       kube-controller-manager, kubectl), in
#                                       its own bin dir, for
#                                       TOLLGATE_K8S_BIN=<that dir> cluster.sh
#
# Idempotent: a binary already in the bin dir is not rebuilt, so a warm run
# takes well under a second. Versions come from versions.env (override with
# TOLLGATE_{K8S,ETCD,HELM}_VERSION, TOLLGATE_{K8S,ETCD}_OLDEST_VERSION); the
# cache dirs from TOLLGATE_TOOLS_DIR and TOLLGATE_OLDEST_TOOLS_DIR.
# Progress and build times go to stderr and to $TOLLGATE_TOOLS_DIR/build-times.txt;
# stdout is only the bin dir, so `BIN=$(tests/k8s/build-tools.sh)` works.
# Go is used here only to build these upstream tools, never for product code.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"

oldest=0
case "${1:-}" in
  "") ;;
  --oldest) oldest=1 ;;
  *) echo "usage: $0 [--oldest]" >&2; exit 2 ;;
esac

helm_version="$TOLLGATE_HELM_VERSION"
helm3_version="$TOLLGATE_HELM3_VERSION"
kubelet_version="$TOLLGATE_KUBELET_VERSION"
crictl_version="$TOLLGATE_CRICTL_VERSION"
if (( oldest )); then
  k8s_version="$TOLLGATE_K8S_OLDEST_VERSION"
  etcd_version="$TOLLGATE_ETCD_OLDEST_VERSION"
  tools_dir="$TOLLGATE_OLDEST_TOOLS_DIR"
  # What the operator e2e runs on: no scheduler, kubelet or helm.
  k8s_bins=(kube-apiserver kube-controller-manager kubectl)
  all_bins=("${k8s_bins[@]}" etcd)
else
  k8s_version="$TOLLGATE_K8S_VERSION"
  etcd_version="$TOLLGATE_ETCD_VERSION"
  tools_dir="$TOLLGATE_TOOLS_DIR"
  k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  # The kubelet's version may differ from the control plane's (versions.env
  # says why); its binary is kubelet-<version>, so a bump rebuilds only it.
  kubelet_bin="kubelet-$kubelet_version"
  all_bins=("${k8s_bins[@]}" etcd helm "helm-$helm3_version" "$kubelet_bin" crictl)
fi
bin="$tools_dir/bin"

log() { echo "build-tools: $*" >&2; }

all_built() {
  local b
  for b in "${all_bins[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

# Fast path: nothing to do, no lock, no go command.
if all_built; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { log "the go command is needed to build the tools"; exit 1; }
mkdir -p "$bin" "$tools_dir/src"
# Two test runs may start at once; only one builds.
exec 9>"$tools_dir/.lock"
flock 9
if all_built; then
  echo "$bin"
  exit 0
fi

# A cold build fills Go's build cache (~5 GiB) and module cache (~1.1 GiB):
# fail now rather than with a full disk half way.
min_free_gb="${TOLLGATE_TOOLS_MIN_FREE_GB:-8}"
gocache="$(go env GOCACHE)"
mkdir -p "$gocache"
free_gb=$(( $(df -Pk "$gocache" | awk 'NR == 2 { print $4 }') / 1024 / 1024 ))
if (( free_gb < min_free_gb )); then
  log "only ${free_gb} GiB free for Go's caches; a cold build needs ~${min_free_gb} GiB (TOLLGATE_TOOLS_MIN_FREE_GB)"
  exit 1
fi

# Release-like, static, small binaries. GOFLAGS=-mod=mod lets `go build` fill
# in the throwaway go.mod/go.sum; GOWORK=off keeps any go.work out of it.
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off
build_flags=(-trimpath)

# go_build NAME PKG LDFLAGS: builds one binary atomically and records its time.
go_build() {
  local name="$1" pkg="$2" ldflags="$3" start secs
  if [[ -x "$bin/$name" ]]; then return 0; fi
  log "building $name ($pkg)..."
  start=$(date +%s)
  go build "${build_flags[@]}" -ldflags "-s -w $ldflags" -o "$bin/.$name.tmp" "$pkg"
  mv "$bin/.$name.tmp" "$bin/$name"
  secs=$(( $(date +%s) - start ))
  log "built $name in ${secs}s"
  echo "$(date -u +%FT%TZ) $name ${secs}s nproc=$(nproc) $(go env GOVERSION)" >> "$tools_dir/build-times.txt"
}

# new_module DIR: an empty throwaway main module that only requires tools.
new_module() {
  rm -rf "$1"
  mkdir -p "$1"
  printf 'module tollgate.local/tools\n\ngo %s\n' "$(go env GOVERSION | sed -E 's/^go([0-9.]+).*/\1/')" > "$1/go.mod"
}

# build_kubernetes VERSION SRCDIR SUFFIX BIN...: k8s.io/kubernetes/cmd/BIN at
# VERSION, each as bin/BIN<SUFFIX>.
build_kubernetes() {
  local k8s_version="$1" srcdir="$2" suffix="$3"
  shift 3
  local missing=0 b
  for b in "$@"; do [[ -x "$bin/$b$suffix" ]] || missing=1; done
  (( missing )) || return 0
  local dir="$tools_dir/src/$srcdir"
  new_module "$dir"
  cd "$dir"
  # k8s.io/kubernetes requires its staging repos (k8s.io/api, client-go, ...)
  # at v0.0.0 and replaces them with ./staging paths that a dependency cannot
  # use; each is published as its own module at v0.N.M for Kubernetes v1.N.M.
  local staging="v0.${k8s_version#v1.}"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$k8s_version" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')"
  [[ -f "$gomod" ]] || { log "could not fetch go.mod of k8s.io/kubernetes@$k8s_version"; exit 1; }
  local args=(-require="k8s.io/kubernetes@$k8s_version") m
  while read -r m; do
    args+=(-replace="$m=$m@$staging")
  done < <(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$gomod")
  go mod edit "${args[@]}"

  local minor="${k8s_version#v1.}"
  minor="${minor%%.*}"
  local ld="" key val pkg kv
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    for kv in "gitVersion=$k8s_version" gitMajor=1 "gitMinor=$minor" gitTreeState=clean \
              buildDate=1970-01-01T00:00:00Z; do
      key="${kv%%=*}" val="${kv#*=}"
      ld+=" -X $pkg.$key=$val"
    done
  done
  for b in "$@"; do
    go_build "$b$suffix" "k8s.io/kubernetes/cmd/$b" "$ld"
  done
}

# build_module NAME MODULE VERSION PKG LDFLAGS: PKG of MODULE@VERSION, as bin/NAME.
build_module() {
  local name="$1" module="$2" version="$3" pkg="$4" ld="$5"
  [[ -x "$bin/$name" ]] && return 0
  local dir="$tools_dir/src/$name"
  new_module "$dir"
  cd "$dir"
  go mod edit -require="$module@$version"
  go_build "$name" "$pkg" "$ld"
}

# build_helm VERSION NAME: helm.sh/helm/vN at VERSION, as bin/NAME.
build_helm() {
  local version="$1" name="$2"
  [[ -x "$bin/$name" ]] && return 0
  local dir="$tools_dir/src/$name" major="${version%%.*}"
  local mod="helm.sh/helm/$major"
  new_module "$dir"
  cd "$dir"
  go mod edit -require="$mod@$version"
  local ld="-X $mod/internal/version.version=$version -X $mod/internal/version.gitTreeState=clean"
  if [[ "$major" == v3 ]]; then
    # Helm 3's Makefile stamps the Kubernetes version that `helm template`
    # and `helm lint` assume (else v1.20, below the chart's kubeVersion):
    # client-go v0.N.M means Kubernetes 1.N.
    go mod download "$mod"
    local cg
    cg="$(go list -m -f '{{.Version}}' k8s.io/client-go)"
    cg="${cg#v0.}"
    local pkg
    for pkg in pkg/lint/rules pkg/chartutil; do
      ld+=" -X $mod/$pkg.k8sVersionMajor=1 -X $mod/$pkg.k8sVersionMinor=${cg%%.*}"
    done
  fi
  go_build "$name" "$mod/cmd/helm" "$ld"
}

total_start=$(date +%s)
# The etcd binary's main package is the root of the server module
# (go.etcd.io/etcd/v3, the repository root, is not on the proxy).
build_module etcd go.etcd.io/etcd/server/v3 "$etcd_version" go.etcd.io/etcd/server/v3 ""
if (( ! oldest )); then
  build_helm "$helm_version" helm
  build_helm "$helm3_version" "helm-$helm3_version"
fi
build_kubernetes "$k8s_version" kubernetes "" "${k8s_bins[@]}"
if (( ! oldest )); then
  build_kubernetes "$kubelet_version" "kubernetes-$kubelet_version" "-$kubelet_version" kubelet
  build_module crictl sigs.k8s.io/cri-tools "$crictl_version" sigs.k8s.io/cri-tools/cmd/crictl \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl_version"
fi
log "all tools built in $(( $(date +%s) - total_start ))s into $bin"
echo "$bin"
