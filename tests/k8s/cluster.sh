#!/usr/bin/env bash
# A throwaway Kubernetes control plane on loopback for the e2e tests: etcd,
# kube-apiserver and (unless TOLLGATE_K8S_CONTROLLERS=0) kube-controller-manager,
# on free ports, with a fresh CA, serving cert and service-account key.
# By default no kubelet, scheduler or network: pods stay Pending. What this is
# for: CRDs, RBAC, admission webhooks, server-side apply, garbage collection.
#
# TOLLGATE_K8S_NODE=1 adds a real node (node.sh): containerd, kubelet and
# kube-scheduler, with the whole cluster inside a network namespace the script
# creates (the API server then listens on port 443 there, also as the
# `kubernetes` Service IP 10.0.0.1). TOLLGATE_K8S_IMAGES lists the image
# archives to load into containerd (the pause image, tollgate.test/pause:e2e,
# among them). `run` and `exec` run CMD inside the namespace.
#
#   tests/k8s/cluster.sh start        start; print the state dir
#   tests/k8s/cluster.sh env          print `export KUBECONFIG=...` lines to eval
#   tests/k8s/cluster.sh stop         stop everything and remove the state dir
#   tests/k8s/cluster.sh restart-apiserver   stop kube-apiserver and start it again
#   tests/k8s/cluster.sh run -- CMD   start, run CMD with the env set, stop
#   tests/k8s/cluster.sh exec -- CMD  run CMD with the env set (in the node's namespace)
#
# State dir: $TOLLGATE_K8S_STATE (default ${TMPDIR:-/tmp}/tollgate-k8s); it holds
# kubeconfig, admin.token, ca.crt, env (KEY=VALUE lines), pids/ and logs/.
# Binaries: $TOLLGATE_K8S_BIN, else the dir that build-tools.sh builds into.
# TOLLGATE_K8S_CRDS=FILE|DIR is applied before the controller manager starts
# (see the garbage-collection note in start); TOLLGATE_K8S_KEEP_LOGS=DIR
# copies the logs there on stop; TOLLGATE_K8S_READY_TIMEOUT (s, default 120);
# TOLLGATE_K8S_APISERVER_ARGS / TOLLGATE_K8S_CONTROLLER_MANAGER_ARGS add flags
# (split on spaces), e.g. --feature-gates=... or --v=4.
# shellcheck disable=SC2086,SC2206 # the *_ARGS variables are split on purpose
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"

state="${TOLLGATE_K8S_STATE:-${TMPDIR:-/tmp}/tollgate-k8s}"
node="${TOLLGATE_K8S_NODE:-0}"
bin="${TOLLGATE_K8S_BIN:-$TOLLGATE_TOOLS_DIR/bin}"
ready_timeout="${TOLLGATE_K8S_READY_TIMEOUT:-120}"
controllers="${TOLLGATE_K8S_CONTROLLERS:-1}"
crds="${TOLLGATE_K8S_CRDS:-}"

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# shellcheck source=node.sh
. "$here/node.sh"

# free_ports N: N distinct free loopback TCP ports, one a line. The sockets
# stay open until all are chosen, so the N are distinct.
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))
PY
}

# wait_for WHAT PIDNAME CMD...: polls CMD until it succeeds, the process dies
# or the deadline passes. No fixed sleeps beyond the 0.2 s poll interval.
wait_for() {
  local what="$1" name="$2" deadline=$((SECONDS + ready_timeout))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then
      tail -n 40 "$state/logs/$name.log" >&2 || true
      die "$name exited while waiting for $what (log: $state/logs/$name.log)"
    fi
    if (( SECONDS >= deadline )); then
      tail -n 40 "$state/logs/$name.log" >&2 || true
      die "$what not ready after ${ready_timeout}s (log: $state/logs/$name.log)"
    fi
    sleep 0.2
  done
}

# alive NAME: the process recorded in pids/NAME runs and is that binary (a
# recycled pid of another program does not count).
alive() {
  local pid
  pid="$(cat "$state/pids/$1" 2>/dev/null)" || return 1
  [[ -n "$pid" && "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */"$1" ]]
}

# spawn_path NAME PATH ARGS...: starts PATH in its own session as NAME,
# logs to logs/NAME.log.
spawn_path() {
  local name="$1" path="$2"
  shift 2
  setsid "$path" "$@" > "$state/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$state/pids/$name"
}

# spawn NAME ARGS...: starts $bin/NAME.
spawn() {
  spawn_path "$1" "$bin/$1" "${@:2}"
}

# stop_process NAME: SIGTERM, SIGKILL after 15 s.
stop_process() {
  local name="$1" pid deadline
  alive "$name" || return 0
  pid="$(cat "$state/pids/$name")"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 15))
  while alive "$name" && (( SECONDS < deadline )); do sleep 0.1; done
  if alive "$name"; then kill -KILL "$pid" 2>/dev/null || true; fi
}

gen_pki() {
  local pki="$state/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    key ca.key
    openssl req -x509 -new -key ca.key -subj /CN=tollgate-e2e-ca -days 3650 -out ca.crt \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    key apiserver.key
    openssl req -new -key apiserver.key -subj /CN=kube-apiserver -out apiserver.csr
    # kubernetes.default.svc names and the first service IP (10.0.0.1) let
    # in-cluster style clients verify too; only 127.0.0.1 is ever dialled.
    printf '%s\n' \
      "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1" \
      > apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
      -days 365 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    # Signs and verifies service-account tokens (TokenRequest, `kubectl create token`).
    key sa.key
    openssl pkey -in sa.key -pubout -out sa.pub
  )
  cp "$pki/ca.crt" "$state/ca.crt"
}

# write_kubeconfig FILE USER TOKEN
write_kubeconfig() {
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tollgate-e2e
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(base64 -w0 < "$state/ca.crt")
users:
- name: $2
  user:
    token: $3
contexts:
- name: tollgate-e2e
  context: {cluster: tollgate-e2e, user: $2}
current-context: tollgate-e2e
EOF
  chmod 600 "$1"
}

start() {
  [[ -x "$bin/kube-apiserver" && -x "$bin/etcd" ]] \
    || die "no binaries in $bin: run tests/k8s/build-tools.sh first"
  command -v openssl >/dev/null || die "openssl is needed (Debian package openssl)"
  command -v python3 >/dev/null || die "python3 is needed to pick free ports"
  if [[ -d "$state" ]]; then
    alive kube-apiserver && die "a cluster already runs in $state; stop it first"
    rm -rf "$state"
  fi
  mkdir -p "$state/pids" "$state/logs"
  # kubectl's discovery cache lives with the cluster, not in ~/.kube.
  export KUBECACHEDIR="$state/kube-cache"
  local t0=$SECONDS
  local ports
  mapfile -t ports < <(free_ports 4)
  local etcd_port="${ports[0]}" peer_port="${ports[1]}" kcm_port="${ports[3]}"
  api_port="${ports[2]}"
  local bind=127.0.0.1
  local -a node_args=()
  if [[ "$node" == 1 ]]; then
    # Inside the test's own namespace: port 443 on every address there, so
    # pods reach it as the `kubernetes` Service (10.0.0.1:443) without a
    # kube-proxy; webhook Services are dialled through their endpoints.
    api_port=443 bind=0.0.0.0
    node_args=(--enable-aggregator-routing=true)
    echo "$TOLLGATE_K8S_IN_NETNS" > "$state/netns"
  fi

  gen_pki
  local admin_token kcm_token
  admin_token="$(openssl rand -hex 24)"
  kcm_token="$(openssl rand -hex 24)"
  # The controller manager is in system:masters so it can run every
  # controller with its own identity (no per-controller service accounts).
  printf '%s\n' \
    "$admin_token,tollgate-admin,tollgate-admin,\"system:masters\"" \
    "$kcm_token,system:kube-controller-manager,kube-controller-manager,\"system:masters\"" \
    > "$state/pki/tokens.csv"
  echo "$admin_token" > "$state/admin.token"
  chmod 600 "$state/pki/tokens.csv" "$state/admin.token"

  spawn etcd --name tollgate-e2e --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "tollgate-e2e=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --log-level warn
  wait_for "etcd" etcd curl -fsS "http://127.0.0.1:$etcd_port/health"

  local pki="$state/pki"
  # --endpoint-reconciler-type=none: the `kubernetes` Service gets no
  # endpoints (a loopback IP is not a valid endpoint, and nothing in this
  # cluster dials it). Admission: the defaults, which include ServiceAccount,
  # NamespaceLifecycle and the webhook/policy plugins the operator relies on.
  local api_args=(
    --etcd-servers "http://127.0.0.1:$etcd_port"
    --bind-address "$bind" --advertise-address 127.0.0.1 --secure-port "$api_port"
    "${node_args[@]}"
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key"
    --client-ca-file "$pki/ca.crt"
    --token-auth-file "$pki/tokens.csv"
    --authorization-mode RBAC
    --service-account-issuer "https://kubernetes.default.svc"
    --service-account-key-file "$pki/sa.pub"
    --service-account-signing-key-file "$pki/sa.key"
    --service-cluster-ip-range 10.0.0.0/24
    --endpoint-reconciler-type none
    --allow-privileged
    --profiling=false
    --cert-dir "$state/apiserver-certs"
    ${TOLLGATE_K8S_APISERVER_ARGS:-}
  )
  # Kept for restart-apiserver.
  printf '%s\0' "${api_args[@]}" > "$state/apiserver.args"
  spawn kube-apiserver "${api_args[@]}"
  write_kubeconfig "$state/kubeconfig" tollgate-admin "$admin_token"
  wait_for "kube-apiserver /readyz" kube-apiserver \
    curl -fsS --cacert "$state/ca.crt" -H "Authorization: Bearer $admin_token" \
    "https://127.0.0.1:$api_port/readyz"
  local api_ready=$((SECONDS - t0))

  # The garbage collector re-reads discovery only every 30 s (fixed in
  # kube-controller-manager), so CRDs that exist before it starts have their
  # owned objects collected at once; later ones only after its next sync.
  if [[ -n "$crds" ]]; then
    "$bin/kubectl" --kubeconfig "$state/kubeconfig" apply -f "$crds" >&2 \
      || die "kubectl apply -f $crds failed"
    # `kubectl wait` fails at once (not waits) on a CRD whose status has no
    # conditions yet, as a busy API server may leave it for a moment.
    local deadline=$((SECONDS + ready_timeout))
    until "$bin/kubectl" --kubeconfig "$state/kubeconfig" wait --for=condition=Established \
      --timeout="${ready_timeout}s" crd --all >/dev/null 2>&1; do
      ((SECONDS < deadline)) || die "CRDs from $crds not Established"
      sleep 0.2
    done
  fi

  if [[ "$controllers" != 0 ]]; then
    [[ -x "$bin/kube-controller-manager" ]] || die "no kube-controller-manager in $bin"
    write_kubeconfig "$state/kcm.kubeconfig" system:kube-controller-manager "$kcm_token"
    # Garbage collection, namespace deletion, the `default` service account
    # in each namespace and the kube-root-ca.crt ConfigMap come from here.
    spawn kube-controller-manager \
      --kubeconfig "$state/kcm.kubeconfig" \
      --authentication-kubeconfig "$state/kcm.kubeconfig" \
      --authorization-kubeconfig "$state/kcm.kubeconfig" \
      --authentication-skip-lookup \
      --flex-volume-plugin-dir "$state/flexvolume" \
      --bind-address 127.0.0.1 --secure-port "$kcm_port" \
      --cert-dir "$state/kcm-certs" \
      --leader-elect=false \
      --use-service-account-credentials=false \
      --service-account-private-key-file "$pki/sa.key" \
      --root-ca-file "$pki/ca.crt" \
      --service-cluster-ip-range 10.0.0.0/24 \
      --controllers '*' \
      ${TOLLGATE_K8S_CONTROLLER_MANAGER_ARGS:-}
    wait_for "kube-controller-manager /healthz" kube-controller-manager \
      curl -fsSk "https://127.0.0.1:$kcm_port/healthz"
    # Pods and `kubectl create token` in `default` need its service account.
    wait_for "serviceaccount default/default" kube-controller-manager \
      "$bin/kubectl" --kubeconfig "$state/kubeconfig" -n default get serviceaccount default
  fi

  if [[ "$node" == 1 ]]; then
    node_start "$admin_token"
  fi

  cat > "$state/env" <<EOF
KUBECONFIG=$state/kubeconfig
TOLLGATE_K8S_STATE=$state
TOLLGATE_K8S_BIN=$bin
TOLLGATE_K8S_API=https://127.0.0.1:$api_port
TOLLGATE_K8S_CA=$state/ca.crt
TOLLGATE_K8S_TOKEN_FILE=$state/admin.token
TOLLGATE_K8S_ETCD=http://127.0.0.1:$etcd_port
KUBECACHEDIR=$state/kube-cache
HELM_CACHE_HOME=$state/helm/cache
HELM_CONFIG_HOME=$state/helm/config
HELM_DATA_HOME=$state/helm/data
EOF
  if [[ "$node" == 1 ]]; then
    printf '%s\n' "TOLLGATE_K8S_NETNS=$TOLLGATE_K8S_IN_NETNS" \
      "TOLLGATE_K8S_CONTAINERD=$state/containerd/containerd.sock" >> "$state/env"
  fi
  log "ready in $((SECONDS - t0))s (apiserver ready after ${api_ready}s): https://127.0.0.1:$api_port, state $state"
  echo "$state"
}

print_env() {
  [[ -f "$state/env" ]] || die "no cluster in $state (run: $0 start)"
  local line
  while IFS= read -r line; do printf 'export %s=%q\n' "${line%%=*}" "${line#*=}"; done < "$state/env"
  # shellcheck disable=SC2016 # $PATH is for the shell that evals this
  printf 'export PATH=%q:"$PATH"\n' "$bin"
}

# Stops kube-apiserver (SIGTERM, as an upgrade of its static pod would, then
# SIGKILL after 5 s) and starts it again with the same flags and port;
# returns once /readyz answers. etcd and the controller manager keep running.
restart_apiserver() {
  [[ -f "$state/apiserver.args" ]] || die "no cluster in $state (run: $0 start)"
  local pid deadline api token
  local -a args
  api="$(sed -n 's/^TOLLGATE_K8S_API=//p' "$state/env")"
  token="$(cat "$state/admin.token")"
  local t0=$SECONDS
  if alive kube-apiserver; then
    pid="$(cat "$state/pids/kube-apiserver")"
    kill -TERM "$pid"
    # It stops listening at once, but then waits (up to its 60 s request
    # timeout) for requests the controller manager keeps open; a crash is
    # a restart too, so that wait is cut short.
    deadline=$((SECONDS + 5))
    while alive kube-apiserver && (( SECONDS < deadline )); do sleep 0.1; done
    if alive kube-apiserver; then kill -KILL "$pid"; log "kube-apiserver still draining after 5s: killed"; fi
  fi
  cat "$state/logs/kube-apiserver.log" >> "$state/logs/kube-apiserver.previous.log"
  mapfile -d '' args < "$state/apiserver.args"
  t0=$SECONDS
  spawn kube-apiserver "${args[@]}"
  wait_for "kube-apiserver /readyz after restart" kube-apiserver \
    curl -fsS --cacert "$state/ca.crt" -H "Authorization: Bearer $token" "$api/readyz"
  log "kube-apiserver restarted, ready after $((SECONDS - t0))s"
}

stop() {
  local name ns=""
  ns="$(cat "$state/netns" 2>/dev/null || true)"
  [[ -n "$ns" ]] && node_stop
  for name in kube-controller-manager kube-apiserver etcd; do
    stop_process "$name"
  done
  if [[ -n "${TOLLGATE_K8S_KEEP_LOGS:-}" && -d "$state/logs" ]]; then
    mkdir -p "$TOLLGATE_K8S_KEEP_LOGS"
    cp -r "$state/logs/." "$TOLLGATE_K8S_KEEP_LOGS/"
  fi
  rm -rf "$state"
  [[ -n "$ns" && -e "/run/netns/$ns" ]] && ip netns del "$ns"
  log "stopped"
}

# in_env CMD...: CMD with the cluster's env (and PATH) set.
in_env() {
  set -a
  # shellcheck disable=SC1091
  . "$state/env"
  set +a
  PATH="$bin:$PATH" "$@"
}

# With a node, start/run/exec run inside the test's network namespace:
# created here for start and run, entered for exec.
if [[ "$node" == 1 && -z "${TOLLGATE_K8S_IN_NETNS:-}" ]]; then
  case "${1:-}" in
    start | run)
      ns="$(netns_name)"
      [[ -d "$state" ]] && alive kube-apiserver && die "a cluster already runs in $state; stop it first"
      netns_create "$ns"
      TOLLGATE_K8S_IN_NETNS="$ns" exec nsenter --net="/run/netns/$ns" "$0" "$@"
      ;;
    exec | restart-apiserver)
      ns="$(cat "$state/netns" 2>/dev/null)" || die "no cluster with a node in $state"
      TOLLGATE_K8S_IN_NETNS="$ns" exec nsenter --net="/run/netns/$ns" "$0" "$@"
      ;;
  esac
fi

case "${1:-}" in
  start) start ;;
  env) print_env ;;
  stop) stop ;;
  restart-apiserver) restart_apiserver ;;
  run)
    shift
    [[ "${1:-}" == "--" ]] && shift
    (( $# )) || die "usage: $0 run -- CMD [ARGS...]"
    trap stop EXIT
    start > /dev/null
    in_env "$@"
    ;;
  exec)
    shift
    [[ "${1:-}" == "--" ]] && shift
    (( $# )) || die "usage: $0 exec -- CMD [ARGS...]"
    [[ -f "$state/env" ]] || die "no cluster in $state (run: $0 start)"
    in_env "$@"
    ;;
  *) die "usage: $0 start|env|stop|restart-apiserver|run -- CMD|exec -- CMD" ;;
esac
