#!/usr/bin/env bash
# Regenerate docker/seccomp/sandbox.json from Docker's default profile as Debian ships it
# for the engine version we test against (package golang-github-docker-docker-dev, built
# from the same docker.io source as the engine), fetched with apt-get and checked against
# the sha256 pinned here. Review the diff of sandbox.json before committing it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PACKAGE=golang-github-docker-docker-dev=20.10.24+dfsg1-1+deb12u1
UPSTREAM=usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json
UPSTREAM_SHA256=e5e91f884647e7332b3f89280777752f563df4f1372a186f14ddb7bf2f55cf61

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq "$PACKAGE" 2>/dev/null) \
  || { echo "update.sh: cannot download $PACKAGE (run 'apt-get update' first?)" >&2; exit 1; }
dpkg-deb -x "$work"/*.deb "$work/x"
echo "$UPSTREAM_SHA256  $work/x/$UPSTREAM" | sha256sum -c --status \
  || { echo "update.sh: $UPSTREAM does not match the pinned sha256" >&2; exit 1; }
python3 "$here/generate.py" "$work/x/$UPSTREAM" > "$here/sandbox.json"
echo "wrote $here/sandbox.json from $PACKAGE"
