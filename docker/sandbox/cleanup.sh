#!/usr/bin/env bash
# Remove sandbox-kernel's stale containers: exited or never started, or whose owner process
# is gone. Touches only containers labelled sandbox_kernel.session. Appends to cleanup.log.
#   docker/sandbox/cleanup.sh [--dry-run]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log="${SANDBOX_CLEANUP_LOG:-$here/cleanup.log}"
cli="${SANDBOX_KERNEL_CLI:-}"
if [ -z "$cli" ]; then
  if [ -x "$here/../../.venv/bin/sandbox-kernel" ]; then cli="$here/../../.venv/bin/sandbox-kernel"
  elif command -v sandbox-kernel >/dev/null; then cli=sandbox-kernel
  else echo "cleanup: sandbox-kernel is not installed (make venv)" >&2; exit 1; fi
fi
out=$("$cli" cleanup "$@")
printf '%s\n' "$out"
{ printf '%s cleanup %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; printf '%s\n' "$out" | sed 's/^/  /'; } >> "$log"
