# shellcheck shell=bash
# The real node that cluster.sh adds when TOLLGATE_K8S_NODE=1: Debian's
# containerd + runc + CNI plugins, a kubelet and kube-scheduler, all inside a
# network namespace that the test creates, so that pods, the node and the
# control plane talk only to addresses in it. Sourced by cluster.sh (it uses
# its spawn/spawn_path/stop_process/alive/wait_for/log/die and $state/$bin).
#
# Addresses, all inside the test's network namespace:
#   127.0.0.1                   etcd, kube-apiserver (port 443), control plane
#   10.0.0.1/32 on lo           the `kubernetes` Service's ClusterIP: there is
#                               no kube-proxy, so the apiserver listens on it
#                               (port 443) and pods reach it as in a cluster
#   10.88.0.1/24 on bridge cni0 the node's IP and the pods' gateway
#   10.88.0.0/24                pod IPs (bridge CNI, host-local IPAM)
# Services other than `kubernetes` have no ClusterIP routing: the API server
# reaches webhook Services through their endpoints (--enable-aggregator-routing),
# and tests address pods by IP.

node_name=tollgate-node
node_ip=10.88.0.1
pod_subnet=10.88.0.0/24
kubelet_bin="kubelet-$TOLLGATE_KUBELET_VERSION"

# netns_name: the network namespace of this state dir.
netns_name() {
  echo "tollgate-$(printf '%s' "$state" | sha256sum | cut -c1-10)"
}

# netns_create NAME: a fresh namespace with lo, the service IP and the bridge.
netns_create() {
  local ns="$1"
  command -v ip >/dev/null || die "the ip command is needed (Debian package iproute2)"
  if [[ -e "/run/netns/$ns" ]]; then
    ip netns pids "$ns" 2>/dev/null | grep -q . && die "network namespace $ns is in use; stop that cluster first"
    ip netns del "$ns"
  fi
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add 10.0.0.1/32 dev lo
  ip -n "$ns" link add cni0 type bridge
  ip -n "$ns" addr add "$node_ip/24" dev cni0
  ip -n "$ns" link set cni0 up
}

node_check_tools() {
  local missing=() c
  for c in containerd runc; do command -v "$c" >/dev/null || missing+=("$c"); done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] \
    || missing+=(containernetworking-plugins)
  (( ${#missing[@]} == 0 )) \
    || die "the real node needs ${missing[*]} (apt-get install containerd runc containernetworking-plugins)"
  [[ -x "$bin/$kubelet_bin" && -x "$bin/kube-scheduler" && -x "$bin/crictl" ]] \
    || die "no $kubelet_bin, kube-scheduler or crictl in $bin: run tests/k8s/build-tools.sh"
  [[ -n "${TOLLGATE_K8S_IMAGES:-}" ]] \
    || die "TOLLGATE_K8S_IMAGES must name the image archives to load (the pause image at least)"
}

# The kubelet's serving certificate, signed by the cluster CA.
node_pki() {
  local pki="$state/pki"
  (
    cd "$pki"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out kubelet.key 2>/dev/null
    openssl req -new -key kubelet.key -subj "/CN=system:node:$node_name" -out kubelet.csr
    printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature \
      extendedKeyUsage=serverAuth "subjectAltName=IP:$node_ip,DNS:$node_name" > kubelet.ext
    openssl x509 -req -in kubelet.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
      -days 365 -extfile kubelet.ext -out kubelet.crt 2>/dev/null
  )
}

node_write_configs() {
  local c="$state/containerd" cni="$state/cni"
  mkdir -p "$c" "$cni/net.d" "$cni/ipam" "$state/kubelet" "$state/pod-logs"
  cat > "$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"
[debug]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # Loaded from an archive by TOLLGATE_K8S_IMAGES; nothing is ever pulled.
  sandbox_image = "tollgate.test/pause:e2e"
  # This machine's root lacks CAP_SYS_RESOURCE, so runc cannot lower a
  # process's oom_score_adj (the kubelet asks -998 for sandboxes): keep
  # requests at or above containerd's own score, as kind and rootless do.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$c/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$cni/net.d"
    max_conf_num = 1
EOF
  cat > "$cni/net.d/10-tollgate-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "tollgate-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$cni/ipam",
        "ranges": [[{"subnet": "$pod_subnet", "gateway": "$node_ip"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
  # Pods get a resolver that answers nothing: every address in the tests
  # is an IP, and no lookup may leave the namespace.
  echo "nameserver 127.0.0.1" > "$state/resolv.conf"
  cat > "$state/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $state/pki/kubelet.crt
tlsPrivateKeyFile: $state/pki/kubelet.key
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$c/containerd.sock
cgroupDriver: cgroupfs
# This machine mounts cgroup v1; kubelet 1.35 refuses it unless told.
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: true
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
makeIPTablesUtilChains: false
resolvConf: $state/resolv.conf
clusterDomain: cluster.local
podLogsDir: $state/pod-logs
# ConfigMap volumes are refreshed on each pod sync: a shorter period than the
# default minute keeps policy-update tests short. The behaviour is the same.
syncFrequency: 10s
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 60
shutdownGracePeriod: 0s
EOF
}

# node_start ADMIN_TOKEN: containerd, the images, kube-scheduler and the
# kubelet; returns once the node is Ready.
node_start() {
  local token="$1"
  node_check_tools
  node_pki
  node_write_configs
  # Pod network namespaces that exist already are not ours to remove on stop.
  (ls /run/netns 2>/dev/null || true) | grep '^cni-' > "$state/netns-before" || true
  spawn_path containerd "$(command -v containerd)" --config "$state/containerd/config.toml"
  wait_for "containerd" containerd \
    ctr --address "$state/containerd/containerd.sock" version
  local archive
  for archive in ${TOLLGATE_K8S_IMAGES}; do
    ctr --address "$state/containerd/containerd.sock" -n k8s.io images import --no-unpack "$archive" >&2 \
      || die "ctr images import $archive failed"
  done

  write_kubeconfig "$state/node.kubeconfig" tollgate-admin "$token"
  spawn kube-scheduler --kubeconfig "$state/node.kubeconfig" \
    --authentication-kubeconfig "$state/node.kubeconfig" \
    --authorization-kubeconfig "$state/node.kubeconfig" \
    --authentication-skip-lookup \
    --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false
  spawn "$kubelet_bin" --config "$state/kubelet/config.yaml" \
    --kubeconfig "$state/node.kubeconfig" \
    --root-dir "$state/kubelet" --cert-dir "$state/kubelet/pki" \
    --hostname-override "$node_name" --node-ip "$node_ip" --v=1
  wait_for "node $node_name Ready" "$kubelet_bin" \
    "$bin/kubectl" --kubeconfig "$state/kubeconfig" wait --for=condition=Ready --timeout=1s "node/$node_name"
}

# node_stop: every pod sandbox stopped and removed (network torn down by
# CNI), then the kubelet and containerd, then leftover mounts and cgroups.
node_stop() {
  local sock="$state/containerd/containerd.sock"
  stop_process "$kubelet_bin"
  stop_process kube-scheduler
  if alive containerd; then
    local crictl=("$bin/crictl" --runtime-endpoint "unix://$sock" --timeout 30s)
    "${crictl[@]}" stopp $("${crictl[@]}" pods -q) >/dev/null 2>&1 || true
    "${crictl[@]}" rmp -af >/dev/null 2>&1 || true
    stop_process containerd
  fi
  # Shims left by a killed containerd, and their containers.
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock" || true); do
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Mounts under the state dir (rootfs overlays, tmpfs secret volumes, shm),
  # deepest first; pod network namespaces the CNI made.
  local m
  while read -r m; do umount -l "$m" 2>/dev/null || true; done \
    < <(awk -v s="$state/" 'index($2, s) == 1 { print $2 }' /proc/self/mounts | sort -r)
  # Pod network namespaces that CRI left (a sandbox removed while its
  # network was being torn down): those made since start, used by no process.
  local n
  for m in /run/netns/cni-*; do
    [[ -e "$m" ]] || continue
    n="${m##*/}"
    grep -qx "$n" "$state/netns-before" 2>/dev/null && continue
    [[ -z "$(ip netns pids "$n" 2>/dev/null)" ]] && ip netns del "$n" 2>/dev/null || true
  done
  # The kubelet's cgroups (kubepods), deepest first, in every hierarchy.
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

