#!/usr/bin/env bash
# The real-node e2e (`make test` runs it): builds the images (`make images`
# plus the test's mock, app and pause images), starts a control plane and a
# real node (containerd + kubelet, in a network namespace of its own) with
# those images loaded, installs the chart as the README says and runs
# tests/k8s/node_e2e.py against it. Needs root, Debian's containerd, runc,
# containernetworking-plugins, buildah and musl-tools, and the tools from
# build-tools.sh. TOLLGATE_K8S_KEEP_LOGS=DIR keeps the cluster's logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/k8s/build-tools.sh >/dev/null
if [[ "${TOLLGATE_E2E_SKIP_IMAGES:-0}" != 1 ]]; then
  scripts/build-images.sh --test
fi
images=""
for i in tollgate-proxy tollgate-operator test-pause test-mock test-app; do
  images+=" $PWD/target/images/$i.tar"
done
state="${TOLLGATE_K8S_STATE:-/tmp/tollgate-node-e2e}"
t0=$SECONDS
TOLLGATE_K8S_NODE=1 TOLLGATE_K8S_IMAGES="$images" TOLLGATE_K8S_STATE="$state" \
  tests/k8s/cluster.sh run -- python3 tests/k8s/node_e2e.py
echo "node e2e: $((SECONDS - t0))s with cluster start and stop" >&2

# `cluster.sh stop` (run's exit) must leave no trace on the machine.
left=()
[[ -e "$state" ]] && left+=("state dir $state")
ip netns list | grep -q "^tollgate-" && left+=("network namespaces: $(ip netns list | grep '^tollgate-' | tr '\n' ' ')")
grep -qF " $state/" /proc/self/mounts && left+=("mounts under $state")
for d in /sys/fs/cgroup/*/kubepods; do [[ -d "$d" ]] && left+=("cgroup $d"); done
pgrep -f "containerd-shim.*$state" >/dev/null && left+=("containerd shims")
pgrep -f "$state/kubelet/config.yaml" >/dev/null && left+=("kubelet")
if (( ${#left[@]} )); then
  printf 'FAIL - cluster.sh stop left: %s\n' "${left[@]}"
  exit 1
fi
echo "ok   - cluster.sh stop left no containers, mounts, namespaces, cgroups or processes"
