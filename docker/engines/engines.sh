#!/usr/bin/env bash
# Second engines for the test matrix, beside the main Docker engine (which is never touched).
#
#   docker/engines/engines.sh install          Debian's runsc, podman, catatonit, openssl
#   docker/engines/engines.sh start [IMAGE]    start both engines, load IMAGE into each
#   docker/engines/engines.sh env NAME         print the environment for NAME (see below)
#   docker/engines/engines.sh names            the engine names start provides
#   docker/engines/engines.sh stop             stop both engines (containers of ours removed)
#   docker/engines/engines.sh status
#
# Engines (NAME for `env`): alt-runc (second dockerd, unix socket), alt-runsc (the same
# dockerd, runtime runsc = gVisor), alt-tls (the same dockerd over TCP+TLS on 127.0.0.1 as
# a Docker context; certificates made at start in a fresh temp dir; alt-tls-env: the same
# endpoint through DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH), podman (rootful
# `podman system service` on its own socket). The second dockerd has its own data root, exec root, pid file and
# socket, and a bridge of its own (sandboxes use no network; "bridge": "none" would make
# dockerd delete the main engine's docker0), no iptables or masquerading. Data roots persist under $ENGINES_DATA
# (so a later start need not load the image again); sockets, pid files and certificates
# live under $ENGINES_RUN and go on stop.
set -euo pipefail
export LC_ALL=C

ENGINES_RUN="${SANDBOX_ENGINES_RUN:-/run/sandbox-kernel-engines}"
ENGINES_DATA="${SANDBOX_ENGINES_DATA:-/var/lib/sandbox-kernel-engines}"
TLS_PORT="${SANDBOX_ENGINES_TLS_PORT:-23760}"
TLS_CONTEXT=sandbox-kernel-tls
IMAGE_DEFAULT="sandbox-kernel:agent-v$(sed -n 's/^PROTOCOL_VERSION = \([0-9]*\)$/\1/p' \
  "$(dirname "${BASH_SOURCE[0]}")/../../sandbox_kernel/agent/protocol.py")"
BRIDGE=sk-engines0
BRIDGE_CIDR=10.213.213.1/24
D2_SOCK="$ENGINES_RUN/docker.sock"
PODMAN_SOCK="$ENGINES_RUN/podman.sock"
PODMAN_FLAGS=(--root "$ENGINES_DATA/podman/root" --runroot "$ENGINES_RUN/podman-run"
              --cgroup-manager=cgroupfs --events-backend=file --log-level=error)

die() { echo "engines: $*" >&2; exit 1; }
say() { echo "==> $*"; }

need_root() { [ "$(id -u)" = 0 ] || die "run as root (engines need their own data roots)"; }

kernel_at_least() {  # MAJOR MINOR: is the running kernel at least that version?
  local v; v=$(uname -r); v=${v%%-*}
  local major=${v%%.*} rest=${v#*.}; local minor=${rest%%.*}
  [ "$major" -gt "$1" ] || { [ "$major" -eq "$1" ] && [ "$minor" -ge "$2" ]; }
}

cmd_install() {
  need_root
  local want=()
  command -v runsc >/dev/null || want+=(runsc)
  command -v podman >/dev/null || want+=(podman)
  { [ -x /usr/bin/catatonit ] || [ -x /usr/libexec/podman/catatonit ]; } || want+=(catatonit)
  command -v openssl >/dev/null || want+=(openssl)
  if [ ${#want[@]} -gt 0 ]; then
    say "installing Debian's ${want[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${want[@]}" >/dev/null
  fi
  command -v runsc >/dev/null || die "runsc did not install"
  command -v podman >/dev/null || die "podman did not install"
}

# ----- certificates -----------------------------------------------------------------------
make_certs() {  # DIR: a CA, a server certificate for 127.0.0.1, a client certificate
  local d="$1"
  mkdir -p "$d/client" && chmod 700 "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sandbox-kernel test CA" \
    -keyout "$d/ca-key.pem" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$d/server-key.pem" \
    -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' \
    > "$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" \
    -CAcreateserial -days 2 -extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=sandbox-kernel tests" \
    -keyout "$d/client/key.pem" -out "$d/client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$d/client.ext"
  openssl x509 -req -in "$d/client.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" \
    -CAcreateserial -days 2 -extfile "$d/client.ext" -out "$d/client/cert.pem" 2>/dev/null
  cp "$d/ca.pem" "$d/client/ca.pem"
  chmod 600 "$d"/*-key.pem "$d/client/key.pem"
}

# ----- the second dockerd -------------------------------------------------------------------
dockerd_config() {  # runsc registered; --network=none where runsc needs it (gvisor#10704)
  # No --oci-seccomp: this runsc then answers EPERM where a profile says ENOSYS (clone3),
  # and glibc cannot start threads. gVisor's own syscall filters face the host kernel.
  local args=''
  kernel_at_least 6 11 && args='"--network=none"'
  cat <<EOF
{
  "runtimes": {"runsc": {"path": "$(command -v runsc)", "runtimeArgs": [$args]}},
  "bridge": "$BRIDGE", "iptables": false, "ip6tables": false, "ip-masq": false,
  "storage-driver": "overlay2", "log-level": "warn"
}
EOF
}

wait_for() {  # SECONDS COMMAND...: poll until the command succeeds
  local n=$1; shift
  for _ in $(seq 1 "$((n * 4))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  return 1
}

start_dockerd() {
  if [ -f "$ENGINES_RUN/dockerd.pid" ] && kill -0 "$(cat "$ENGINES_RUN/dockerd.pid")" 2>/dev/null; then
    say "second dockerd already running (pid $(cat "$ENGINES_RUN/dockerd.pid"))"; return 0
  fi
  local certs; certs=$(mktemp -d /tmp/sandbox-kernel-tls.XXXXXX)
  make_certs "$certs"
  echo "$certs" > "$ENGINES_RUN/tls-dir"
  mkdir -p "$ENGINES_DATA/docker" "$ENGINES_RUN/docker-exec"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then  # dockerd uses a named bridge as given
    ip link add "$BRIDGE" type bridge
    ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  dockerd_config > "$ENGINES_RUN/daemon.json"
  say "starting a second dockerd (data root $ENGINES_DATA/docker, socket $D2_SOCK, TLS on 127.0.0.1:$TLS_PORT)"
  cd "$ENGINES_RUN"
  setsid dockerd --config-file "$ENGINES_RUN/daemon.json" \
    --data-root "$ENGINES_DATA/docker" --exec-root "$ENGINES_RUN/docker-exec" \
    --pidfile "$ENGINES_RUN/dockerd.pid" -H "unix://$D2_SOCK" \
    -H "tcp://127.0.0.1:$TLS_PORT" --tlsverify --tlscacert "$certs/ca.pem" \
    --tlscert "$certs/server.pem" --tlskey "$certs/server-key.pem" \
    >"$ENGINES_RUN/dockerd.log" 2>&1 < /dev/null &
  if ! wait_for 60 docker -H "unix://$D2_SOCK" info; then
    tail -n 20 "$ENGINES_RUN/dockerd.log" >&2
    die "the second dockerd did not come up in 60 s (log: $ENGINES_RUN/dockerd.log)"
  fi
  # The TLS endpoint as a Docker context, in a docker config dir of its own.
  mkdir -p "$ENGINES_RUN/docker-config" && echo '{}' > "$ENGINES_RUN/docker-config/config.json"
  docker --config "$ENGINES_RUN/docker-config" context create "$TLS_CONTEXT" \
    --docker "host=tcp://127.0.0.1:$TLS_PORT,ca=$certs/client/ca.pem,cert=$certs/client/cert.pem,key=$certs/client/key.pem" \
    >/dev/null
  wait_for 30 docker --config "$ENGINES_RUN/docker-config" --context "$TLS_CONTEXT" version \
    || die "the TLS endpoint 127.0.0.1:$TLS_PORT does not answer"
}

start_podman() {
  if [ -f "$ENGINES_RUN/podman.pid" ] && kill -0 "$(cat "$ENGINES_RUN/podman.pid")" 2>/dev/null; then
    say "podman service already running (pid $(cat "$ENGINES_RUN/podman.pid"))"; return 0
  fi
  mkdir -p "$ENGINES_DATA/podman/root" "$ENGINES_RUN/podman-run"
  say "starting rootful podman system service (socket $PODMAN_SOCK)"
  # From a directory of its own: conmon writes an "oom" file into its working directory
  # when a container is OOM-killed.
  (cd "$ENGINES_RUN/podman-run" && exec setsid podman "${PODMAN_FLAGS[@]}" system service \
    --time=0 "unix://$PODMAN_SOCK" >"$ENGINES_RUN/podman.log" 2>&1 < /dev/null) &
  echo $! > "$ENGINES_RUN/podman.pid"
  if ! wait_for 60 docker -H "unix://$PODMAN_SOCK" version; then
    tail -n 20 "$ENGINES_RUN/podman.log" >&2
    die "the podman service did not come up in 60 s (log: $ENGINES_RUN/podman.log)"
  fi
}

load_image() {  # HOST IMAGE: copy IMAGE from the main engine unless the same id is there
  local host="$1" image="$2" id
  id=$(docker image inspect -f '{{.Id}}' "$image") || die "image $image is not on the main engine"
  if [ "$(docker -H "$host" image inspect -f '{{.Id}}' "$image" 2>/dev/null)" = "$id" ]; then
    say "$image already on $host"; return 0
  fi
  say "loading $image into $host"
  docker save "$image" | docker -H "$host" load -q >/dev/null
  # Podman names a loaded archive's image localhost/NAME; tag the plain name too.
  docker -H "$host" image inspect "$image" >/dev/null 2>&1 \
    || docker -H "$host" tag "localhost/$image" "$image"
}

cmd_start() {
  need_root
  local image="${1:-${SANDBOX_IMAGE:-$IMAGE_DEFAULT}}"
  cmd_install
  mkdir -p "$ENGINES_RUN" && chmod 700 "$ENGINES_RUN"
  start_dockerd
  start_podman
  load_image "unix://$D2_SOCK" "$image"
  load_image "unix://$PODMAN_SOCK" "$image"
  for name in $(cmd_names); do echo "# $name"; cmd_env "$name"; done
}

cmd_names() { echo alt-runc alt-runsc alt-tls podman; }

cmd_env() {  # NAME: shell assignments that point the docker CLI and sandbox-kernel at it
  case "${1:-}" in
    alt-runc) echo "DOCKER_HOST=unix://$D2_SOCK SANDBOX_RUNTIME=runc" ;;
    alt-runsc) echo "DOCKER_HOST=unix://$D2_SOCK SANDBOX_RUNTIME=runsc" ;;
    alt-tls) echo "DOCKER_CONFIG=$ENGINES_RUN/docker-config DOCKER_CONTEXT=$TLS_CONTEXT" \
                  "SANDBOX_RUNTIME=runc" ;;
    alt-tls-env) echo "DOCKER_HOST=tcp://127.0.0.1:$TLS_PORT DOCKER_TLS_VERIFY=1" \
                  "DOCKER_CERT_PATH=$(cat "$ENGINES_RUN/tls-dir")/client SANDBOX_RUNTIME=runc" ;;
    podman) echo "DOCKER_HOST=unix://$PODMAN_SOCK SANDBOX_RUNTIME=" ;;
    *) die "unknown engine ${1:-(none)}; one of: $(cmd_names)" ;;
  esac
}

remove_ours() {  # HOST: remove sandbox containers (our label only) left on an engine
  local ids
  ids=$(docker -H "$1" ps -aq --filter label=sandbox_kernel.session 2>/dev/null) || return 0
  [ -z "$ids" ] || docker -H "$1" rm -f $ids >/dev/null 2>&1 || true
}

stop_pid() {  # PIDFILE NAME: TERM the process, wait up to 20 s, then KILL it
  local f="$1" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $2 (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$f"
}

stop_conmons() {  # conmon of an exec session lingers (--exit-delay 300) after the service
  local pid
  for pid in $(pgrep -x conmon || true); do
    if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null \
        | grep -qF -- "-b $ENGINES_DATA/podman/root/overlay-containers/"; then
      kill "$pid" 2>/dev/null || true
    fi
  done
}

cmd_stop() {
  need_root
  [ -S "$D2_SOCK" ] && remove_ours "unix://$D2_SOCK"
  [ -S "$PODMAN_SOCK" ] && remove_ours "unix://$PODMAN_SOCK"
  stop_pid "$ENGINES_RUN/dockerd.pid" "the second dockerd"
  stop_pid "$ENGINES_RUN/podman.pid" "the podman service"
  if [ -S "$PODMAN_SOCK" ] || [ -d "$ENGINES_RUN/podman-run" ]; then
    # conmon processes of containers that outlived the service (none expected)
    podman "${PODMAN_FLAGS[@]}" rm -af >/dev/null 2>&1 || true
  fi
  stop_conmons
  ip link del "$BRIDGE" 2>/dev/null || true
  [ -f "$ENGINES_RUN/tls-dir" ] && rm -rf "$(cat "$ENGINES_RUN/tls-dir")"
  rm -rf "$ENGINES_RUN"
}

cmd_status() {
  for f in dockerd podman; do
    if [ -f "$ENGINES_RUN/$f.pid" ] && kill -0 "$(cat "$ENGINES_RUN/$f.pid")" 2>/dev/null; then
      echo "$f: running (pid $(cat "$ENGINES_RUN/$f.pid"))"
    else
      echo "$f: stopped"
    fi
  done
}

case "${1:-}" in
  install) cmd_install ;;
  start) shift; cmd_start "$@" ;;
  env) cmd_env "${2:-}" ;;
  names) cmd_names ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h|--help|"") sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command $1 (try --help)" ;;
esac
