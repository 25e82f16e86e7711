#!/bin/bash
# Container entrypoint: apply limits.conf, log what was applied, then hand the process over
# to the agent (which speaks on stdin/stdout, and drops root at once). The worker makes
# the per-session home on tmpfs itself, since it owns it.
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

log "agent protocol ${SANDBOX_AGENT_PROTOCOL:-?}; core=$(ulimit -c) fsize=$(ulimit -f)KB nofile=$(ulimit -n)"
cd "$here"
# -S: no .pth file of any installed package ever runs in the agent
exec /opt/venv/bin/python -E -s -S -m sandbox_kernel.agent
