#!/usr/bin/env bash
# The browser for tests/ui/test_browser.py: Debian's Chromium (and its driver, for anyone
# who prefers Selenium), installed only when missing. Playwright drives this system
# browser; no browser is ever downloaded by `playwright install`. Idempotent; works as
# root in a fresh Debian container or as a user with sudo.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Chromium from Debian" >&2
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
  chromium chromium-driver fonts-noto-color-emoji >&2
