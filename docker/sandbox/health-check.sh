#!/usr/bin/env bash
# Health of one sandbox container, read from its own cgroup (docker stats omits tmpfs):
#   docker/sandbox/health-check.sh CONTAINER [THRESHOLD%]
# Prints "HEALTHY: Memory=45% CPU=12%" (exit 0) or
#        "UNHEALTHY: Memory usage exceeds threshold: 95%" (exit 1); exit 2 if unreadable.
set -uo pipefail
cid="${1:?usage: health-check.sh CONTAINER [THRESHOLD]}"
threshold="${2:-95}"
probe() {
  docker exec "$cid" /opt/venv/bin/python -m sandbox_kernel.agent.measure 2>/dev/null
}
a=$(probe) || { echo "UNHEALTHY: container $cid is not running"; exit 2; }
sleep 0.5
b=$(probe) || { echo "UNHEALTHY: container $cid is not running"; exit 2; }
python3 - "$a" "$b" "$threshold" <<'PY'
import json, sys
a, b, threshold = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
wall = b["taken_at"] - a["taken_at"]
cpu = max(0.0, (b["cpu_usage_ns"] - a["cpu_usage_ns"]) / (wall * 1e9) * 100) if wall > 0 else 0.0
mem = 100.0 * b["memory_usage"] / b["memory_limit"] if b.get("memory_limit") else 0.0
if mem >= threshold:
    print(f"UNHEALTHY: Memory usage exceeds threshold: {threshold:g}%")
    sys.exit(1)
print(f"HEALTHY: Memory={mem:.0f}% CPU={cpu:.0f}%")
PY
