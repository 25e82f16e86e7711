#!/bin/sh
# Docker HEALTHCHECK: healthy while the agent runs. Only the agent has uid 999 (cell code
# runs as 1000 and cannot change that), so this cannot be faked from a cell.
pgrep -u 999 -f sandbox_kernel.agent >/dev/null
