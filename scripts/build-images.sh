#!/usr/bin/env bash
# Builds Tollgate's container images offline with buildah (Debian package;
# vfs storage, which works as root without overlay): `make images`.
#
#   scripts/build-images.sh               tollgate-proxy and tollgate-operator
#   scripts/build-images.sh --test        also the real-node e2e's images:
#                                         tollgate.test/{mock,app,pause}:e2e
#   scripts/build-images.sh --no-cargo    images from the binaries already built
#
# Each image is one static x86_64-unknown-linux-musl binary on `scratch`
# (images/*.Containerfile). Output in target/images/: NAME.tar (an OCI
# archive named REGISTRY/NAME:VERSION, what `ctr images import` and
# `podman load` take) and NAME.digest (the image manifest's digest).
# REGISTRY is $TOLLGATE_IMAGE_REGISTRY (default ghcr.io/tollgate-dev, the
# chart's default); VERSION is the workspace version (= the chart's
# appVersion). Reproducible: binaries built with paths remapped, layers and
# config stamped with the commit's time (SOURCE_DATE_EPOCH), so the same
# commit gives the same digests (tests/images/check_images.py checks it).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

test_images=0 cargo_build=1
for a in "$@"; do
  case "$a" in
    --test) test_images=1 ;;
    --no-cargo) cargo_build=0 ;;
    *) echo "usage: $0 [--test] [--no-cargo]" >&2; exit 2 ;;
  esac
done

log() { echo "images: $*" >&2; }
die() { log "$*"; exit 1; }

target=x86_64-unknown-linux-musl
dist="target/$target/dist"
out="target/images"
registry="${TOLLGATE_IMAGE_REGISTRY:-ghcr.io/tollgate-dev}"
version="$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)"
[[ -n "$version" ]] || die "no [workspace.package] version in Cargo.toml"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
export SOURCE_DATE_EPOCH

command -v buildah >/dev/null || die "buildah is needed (apt-get install buildah)"

if (( cargo_build )); then
  command -v musl-gcc >/dev/null || die "musl-gcc is needed for ring and jemalloc (apt-get install musl-tools)"
  rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target" >&2
  export CC_x86_64_unknown_linux_musl=musl-gcc
  # No build machine's paths in the binaries: the same commit builds the
  # same bytes wherever it is checked out.
  cargo_home="${CARGO_HOME:-$HOME/.cargo}"
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="--remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$root=/tollgate"
  log "cargo build --profile dist --target $target (proxy, operator)"
  start=$SECONDS
  cargo build --locked --profile dist --target "$target" -p tollgate-proxy -p tollgate-operator --bins
  log "built the release binaries in $((SECONDS - start))s"
  if (( test_images )); then
    cargo build --locked --profile dist --target "$target" -p tollgate-tests \
      --bin tollgate-mock --bin tollgate-e2e-app
  fi
fi

mkdir -p "$out"
store="$out/buildah"
bah=(buildah --storage-driver vfs --root "$store/root" --runroot "$store/run")

# image NAME REF CONTAINERFILE CONTEXT [BUILD ARGS...]: builds, then writes
# NAME.tar/.digest. No build-host identity label (it names the buildah
# version); gzip layers, as a registry would serve them.
image() {
  local name="$1" ref="$2" file="$3" ctx="$4"
  shift 4
  "${bah[@]}" build --quiet --pull=never --format oci --layers=false \
    --timestamp "$SOURCE_DATE_EPOCH" --identity-label=false \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" "$@" \
    -f "$file" -t "$ref" "$ctx" >/dev/null
  rm -f "$out/$name.tar"
  "${bah[@]}" push --quiet --compression-format gzip --digestfile "$out/$name.digest" \
    "$ref" "oci-archive:$out/$name.tar:$ref"
  "${bah[@]}" rmi "$ref" >/dev/null
  log "$ref $(cat "$out/$name.digest") $(du -k "$out/$name.tar" | cut -f1) KiB"
}

for b in tollgate-proxy tollgate-operator; do
  [[ -x "$dist/$b" ]] || die "$dist/$b is missing (run without --no-cargo)"
done
image tollgate-proxy "$registry/tollgate-proxy:$version" images/proxy.Containerfile .
image tollgate-operator "$registry/tollgate-operator:$version" images/operator.Containerfile .

if (( test_images )); then
  ctx="$out/context"
  rm -rf "$ctx" && mkdir -p "$ctx"
  musl-gcc -static -Os -s -o "$ctx/pause" tests/k8s/images/pause.c
  cp "$dist/tollgate-mock" "$ctx/mock"
  cp "$dist/tollgate-e2e-app" "$ctx/app"
  for b in pause mock app; do
    image "test-$b" "tollgate.test/$b:e2e" tests/k8s/images/Containerfile "$ctx" \
      --build-arg "BINARY=$b"
  done
fi
