#!/bin/sh
# Docker HEALTHCHECK: healthy while the agent process is alive.
pid=$(cat /tmp/.sandbox-agent.pid 2>/dev/null) && kill -0 "$pid" 2>/dev/null
