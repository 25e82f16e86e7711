#!/usr/bin/env bash
# Make sure a Docker engine answers. Where none does and we are root on Debian/Ubuntu,
# install the distribution's docker.io and start dockerd in the background, saying so.
set -euo pipefail

wait_for_engine() {
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "No Docker engine is reachable: start one (e.g. 'sudo systemctl start docker') or set DOCKER_HOST, then run this again." >&2
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "No Docker engine is installed: installing Debian's docker.io with apt-get (as root)..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

echo "No Docker engine is running: starting dockerd in the background (log: /var/log/dockerd.log)..."
setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
if ! wait_for_engine; then
  echo "dockerd did not come up within 60 s; see /var/log/dockerd.log" >&2
  tail -n 20 /var/log/dockerd.log >&2 || true
  exit 1
fi
echo "Docker engine is up: $(docker version -f '{{.Server.Version}}' 2>/dev/null)"
