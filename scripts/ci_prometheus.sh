#!/usr/bin/env bash
# promtool for tests/test_deployment_monitoring.py: Debian's `prometheus` package (which
# ships promtool), installed only when promtool is missing. Only the tool is wanted, never
# a Prometheus server: the install runs with service starts denied (a policy-rc.d, unless
# the machine already has one), without the recommended node exporter, and afterwards the
# service is stopped and disabled wherever an init system started or enabled it, so
# nothing is left listening on :9090. Idempotent; works as root in a fresh Debian
# container or as a user with sudo.
set -euo pipefail
if command -v promtool >/dev/null; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

POLICY=/usr/sbin/policy-rc.d
OURS=""
cleanup() {
  if [ -n "$OURS" ]; then $SUDO rm -f "$POLICY"; fi
}
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
  # 101: "action forbidden"; invoke-rc.d and deb-systemd-invoke then start nothing.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  OURS=1
fi

echo "installing Prometheus (for promtool) from Debian" >&2
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  prometheus >&2

# The package enables its service; on a machine with an init system, stop and disable it.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  $SUDO systemctl disable --now prometheus.service >&2 || true
elif [ -x /etc/init.d/prometheus ]; then
  $SUDO /etc/init.d/prometheus stop >&2 || true
  if command -v update-rc.d >/dev/null; then $SUDO update-rc.d prometheus disable >&2 || true; fi
fi
command -v promtool >/dev/null
