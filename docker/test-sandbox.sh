#!/usr/bin/env bash
# The seed's manual image checks, automated: docker/test-sandbox.sh [IMAGE]
# Runs the image with the same hardening the library uses and checks Python and Node
# versions, the non-root user, a writable /sandbox, a read-only root and no network.
set -uo pipefail
image="${1:-sandbox-kernel:agent-v3}"
pass=0; fail=0

run() {  # run a shell snippet as a one-shot command inside a hardened container
  docker run --rm -i --init --network none --read-only --user 1000:1000 --cap-drop ALL \
    --security-opt no-new-privileges --memory 512m --memory-swap 512m --cpus 1 \
    --pids-limit 20 --tmpfs /tmp:rw,noexec,nosuid,size=64m \
    --tmpfs /sandbox:rw,noexec,nosuid,size=256m,uid=1000,gid=1000,mode=0700 \
    --log-driver none --label sandbox_kernel.test=1 --entrypoint /bin/bash "$image" -c "$1" 2>&1
}

check() {  # check NAME EXPECTED-REGEX SNIPPET
  local out
  out=$(run "$3")
  if printf '%s' "$out" | grep -Eq -- "$2"; then
    printf 'PASS  %-28s %s\n' "$1" "$(printf '%s' "$out" | tr '\n' ' ' | cut -c1-60)"
    pass=$((pass + 1))
  else
    printf 'FAIL  %-28s expected /%s/, got: %s\n' "$1" "$2" "$(printf '%s' "$out" | tr '\n' ' ' | cut -c1-200)"
    fail=$((fail + 1))
  fi
}

docker image inspect "$image" >/dev/null 2>&1 || { echo "image $image not found: build it with docker/build-sandbox.sh" >&2; exit 1; }
echo "Testing $image"
check "python 3.11"            '^Python 3\.11\.'            'python3 --version'
check "data libraries"         '^ok$'                       'python3 -c "import numpy, pandas, matplotlib, IPython; print(\"ok\")"'
check "node 22"                '^v22\.'                     'node --version'
check "npm"                    '^[0-9]+\.[0-9]+\.[0-9]+$'   'npm --version'
check "tools"                  '^ok$'                       'command -v git curl wget vim >/dev/null && echo ok'
check "non-root user"          '^sandboxuser 1000$'         'echo "$(whoami) $(id -u)"'
check "/sandbox writable"      '^ok$'                       'echo hi > /sandbox/t && cat /sandbox/t >/dev/null && echo ok'
check "/sandbox is tmpfs"      'tmpfs.*/sandbox'            'df -h /sandbox | tail -1'
check "root read-only"         'Read-only file system'      'touch /etc/x'
check "no capabilities"        'CapEff:\s+0000000000000000' 'grep CapEff /proc/self/status'
check "no new privileges"      'NoNewPrivs:\s+1'            'grep NoNewPrivs /proc/self/status'
check "no setuid binaries"     '^none$'                     'f=$(find / -xdev -perm /6000 -type f 2>/dev/null); echo "${f:-none}"'
check "only loopback"          '^lo$'                       'ls /sys/class/net'
check "no network"             'unreachable|refused|timed out|Errno' 'python3 -c "import socket; socket.create_connection((\"1.1.1.1\", 443), 3)"'
check "no DNS"                 'gaierror|Errno'             'python3 -c "import socket; socket.getaddrinfo(\"example.com\", 80)"'
check "thread pools capped"    '^1 1 2$'                    'echo "$OMP_NUM_THREADS $OPENBLAS_NUM_THREADS $UV_THREADPOOL_SIZE"'
check "numpy under pids=20"    '^ok$'                       'python3 -c "import numpy; numpy.ones((300,300)) @ numpy.ones((300,300)); print(\"ok\")"'
check "agent answers"          '"type":"hello"'             'echo "{\"id\":1,\"type\":\"hello\"}" | /opt/sandbox-kernel/entrypoint.sh 2>/dev/null | head -1'
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
