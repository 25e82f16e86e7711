#!/bin/bash
# Container entrypoint: apply limits.conf, log what was applied, then hand the process over
# to the agent (which speaks on stdin/stdout, and drops root at once). The worker makes
# the per-session home on tmpfs itself, since it owns it.
set -eu
here=/opt/sandbox-kernel

log() { printf 'sandbox-entrypoint: %s\n' "$*" >&2; }

# Comments and blank lines are skipped here, not by a grep: one process less to start.
while read -r domain _type item value; do
  case "$domain" in ''|'#'*) continue ;; esac
  case "$item" in
    core)   ulimit -c "$value" ;;
    fsize)  ulimit -f "$value" ;;
    nofile) ulimit -n "$value" ;;
    nproc|cpu|as) ;;  # enforced by cgroups and the agent, see limits.conf
    *) log "ignoring unknown limit '$item'" ;;
  esac
done < "$here/limits.conf"

log "agent protocol ${SANDBOX_AGENT_PROTOCOL:-?}; core=$(ulimit -c) fsize=$(ulimit -f)KB nofile=$(ulimit -n)"
cd "$here"
# -S: no .pth file of any installed package ever runs in the agent
exec /opt/venv/bin/python -E -s -S -m sandbox_kernel.agent
