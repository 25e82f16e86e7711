#!/usr/bin/env bash
# The browser test needs Debian's Chromium (Playwright's own browser download does not work
# offline). Install it where missing and we are root on Debian/Ubuntu; otherwise say how.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing: installing Debian's chromium with apt-get (for the JupyterLab test)..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "Chromium is missing: install your distribution's chromium (/usr/bin/chromium) to run the JupyterLab test." >&2
exit 1
