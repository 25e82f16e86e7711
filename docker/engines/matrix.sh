#!/usr/bin/env bash
# The engine matrix: start the second engines (docker/engines/engines.sh), run the subset of
# the Docker and kernel suites in tests/engine_matrix.py on each, and stop the engines
# again, also when a run fails or is interrupted.
#
#   docker/engines/matrix.sh [PYTEST-ARGS...]     (MATRIX_ENGINES="alt-runc podman" to pick)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin="${VENV_BIN:-.venv/bin}"
engines="${MATRIX_ENGINES:-alt-runc alt-runsc alt-tls podman}"

if [ "$(id -u)" != 0 ]; then
  echo "engine matrix SKIPPED: starting second engines needs root (CI runs as root)" >&2
  exit 0
fi
trap 'bash docker/engines/engines.sh stop' EXIT
bash docker/engines/engines.sh start > /dev/null || exit 1
read -r -a subset < <("$bin/python" -c \
  "import sys; sys.path.insert(0, 'tests'); import engine_matrix; print(' '.join(engine_matrix.SUBSET))")

failed=()
summary=()
for engine in $engines; do
  echo "==> engine matrix: $engine"
  t0=$(date +%s)
  "$bin/pytest" -q -p no:cacheprovider --engine "$engine" "${subset[@]}" "$@"
  rc=$?
  summary+=("$engine: exit $rc in $(( $(date +%s) - t0 )) s")
  [ "$rc" -eq 0 ] || failed+=("$engine")
done
for host in unix:///run/sandbox-kernel-engines/docker.sock unix:///run/sandbox-kernel-engines/podman.sock; do
  left=$(docker -H "$host" ps -aq --filter label=sandbox_kernel.session | wc -l)
  if [ "$left" -ne 0 ]; then
    echo "engine matrix: $left sandbox container(s) left on $host" >&2
    failed+=("leaks")
  fi
done
printf 'engine matrix: %s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ] || { echo "engine matrix failed on: ${failed[*]}" >&2; exit 1; }
