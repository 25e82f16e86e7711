#!/usr/bin/env bash
# Regenerate docker/sandbox/requirements.lock from docker/sandbox/requirements.in.
#
#   docker/lock-wheels.sh [--upgrade]
#
# Resolution happens on the host, for the image's interpreter and platform (CPython 3.11.2,
# manylinux x86_64, glibc 2.36), with uv; every wheel is then downloaded once (pip download,
# checked against the index's hashes) and pinned by the sha256 of that file. Versions already
# in the lock are kept unless --upgrade. The host's pip and uv configuration is ignored (see
# sandbox_kernel/sandbox/wheels.py); the index is $SANDBOX_PIP_INDEX_URL, else PyPI.
# Needs PYTHON (default: .venv/bin/python of this checkout) with sandbox-kernel and uv.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python="${PYTHON:-$here/../.venv/bin/python}"
[ -x "$python" ] || python=python3
upgrade=()
case "${1:-}" in
  --upgrade) upgrade=(--upgrade) ;;
  "") ;;
  -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
  *) echo "lock-wheels: unknown option $1 (try --help)" >&2; exit 2 ;;
esac
cd "$here/.."
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m sandbox_kernel.sandbox.lock \
  compile docker/sandbox/requirements.in docker/sandbox/requirements.lock \
  --label docker/sandbox/requirements.in "${upgrade[@]}"
