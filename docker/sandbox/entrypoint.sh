#!/bin/bash
# Container entrypoint: apply limits.conf, prepare the per-session home on tmpfs, log what
# was applied, then hand the process over to the agent (which speaks on stdin/stdout).
set -eu
here=/opt/sandbox-kernel

log() { printf 'sandbox-entrypoint: %s\n' "$*" >&2; }

while read -r _domain _type item value; do
  case "$item" in
    core)   ulimit -c "$value" ;;
    fsize)  ulimit -f "$value" ;;
    nofile) ulimit -n "$value" ;;
    nproc|cpu|as) ;;  # enforced by cgroups and the agent, see limits.conf
    *) log "ignoring unknown limit '$item'" ;;
  esac
done < <(grep -Ev '^[[:space:]]*(#|$)' "$here/limits.conf")

export HOME=/tmp/home
mkdir -p "$HOME/.config/matplotlib" "$HOME/.ipython"
cp -r /opt/sandbox-kernel/mplconfig/. "$HOME/.config/matplotlib/" 2>/dev/null || true
export MPLCONFIGDIR="$HOME/.config/matplotlib" IPYTHONDIR="$HOME/.ipython"

log "agent protocol ${SANDBOX_AGENT_PROTOCOL:-?}; core=$(ulimit -c) fsize=$(ulimit -f)KB nofile=$(ulimit -n)"
cd "$here"
exec /opt/venv/bin/python -E -s -m sandbox_kernel.agent
