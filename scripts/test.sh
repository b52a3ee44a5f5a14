#!/usr/bin/env bash
# The test command: install (idempotent), lint, then the whole suite with the real
# embedding model, embedded Qdrant, FastAPI app and CPU generator; the same cases as CI.
#
# Three groups of tests need something outside the venv, which this sets up as CI does:
# the audit log against PostgreSQL (scripts/ci_postgres.sh, unless MEDCITE_TEST_POSTGRES_URL
# is already set), the browser test (scripts/ci_browser.sh, unless Chromium is there) and
# the promtool checks of deploy/ (scripts/ci_prometheus.sh, unless promtool is there).
# All install Debian packages, so they need root or password-less sudo. Where a set-up
# cannot run or fails, the suite still runs without those cases and the end of the output
# says, loudly, which were not run and why. MEDCITE_TEST_REQUIRE_ALL=1 (CI sets it) makes
# that an error instead; MEDCITE_TEST_SETUP=0 installs and starts nothing (quick local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
# install.sh reads these under `set -u`; unset is "none".
export MEDCITE_WHEELS="${MEDCITE_WHEELS:-}"
scripts/install.sh

NOT_RUN=()

can_install() {
  [ "${MEDCITE_TEST_SETUP:-1}" != "0" ] && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }
}

not_run() {  # what, why
  NOT_RUN+=("$1: $2")
  if [ "${MEDCITE_TEST_REQUIRE_ALL:-0}" = "1" ]; then
    echo "scripts/test.sh: cannot run $1: $2" >&2
    exit 1
  fi
}

if [ -z "${MEDCITE_TEST_POSTGRES_URL:-}" ]; then
  if ! can_install; then
    not_run "the audit-log tests on PostgreSQL (tests/app/audit/test_log.py[postgresql])" \
      "MEDCITE_TEST_POSTGRES_URL is unset, and scripts/ci_postgres.sh needs root or sudo (and MEDCITE_TEST_SETUP not 0); export a postgresql+psycopg:// URL of an empty test database"
  elif MEDCITE_TEST_POSTGRES_URL="$(scripts/ci_postgres.sh)"; then
    export MEDCITE_TEST_POSTGRES_URL
  else
    unset MEDCITE_TEST_POSTGRES_URL
    not_run "the audit-log tests on PostgreSQL (tests/app/audit/test_log.py[postgresql])" \
      "scripts/ci_postgres.sh failed (its output is above)"
  fi
fi

# A tool some tests need, installed by its CI script when missing:
# set_up WHAT HAS_FN SCRIPT HOW_TO_GET_IT
set_up() {
  local what="$1" has="$2" script="$3" how="$4"
  "$has" && return 0
  if ! can_install; then
    not_run "$what" "$how, and $script needs root or sudo (and MEDCITE_TEST_SETUP not 0)"
  elif ! "$script" || ! "$has"; then
    not_run "$what" "$script failed (its output is above)"
  fi
}

has_chromium() {
  [ -x "${MEDCITE_CHROMIUM:-/usr/bin/chromium}" ] || command -v chromium >/dev/null
}
set_up "the end-to-end browser test (tests/ui/test_browser.py)" has_chromium \
  scripts/ci_browser.sh "no Chromium (install Debian's chromium or set MEDCITE_CHROMIUM)"

has_promtool() {
  [ -x "${MEDCITE_PROMTOOL:-}" ] || command -v promtool >/dev/null
}
set_up "the promtool checks of the monitoring config, alert rules and dashboard (tests/test_deployment_monitoring.py)" \
  has_promtool scripts/ci_prometheus.sh \
  "no promtool (install Debian's prometheus or set MEDCITE_PROMTOOL)"

.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache
status=0
# -rs lists every skipped test with its reason in pytest's summary.
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DO_NOT_TRACK=1 .venv/bin/python -m pytest -q -rs "$@" \
  || status=$?

if [ "${#NOT_RUN[@]}" -gt 0 ]; then
  {
    echo
    echo "=================================================================================="
    echo "NOT THE WHOLE SUITE: these tests were skipped, so this run is not what CI runs"
    for item in "${NOT_RUN[@]}"; do
      echo "  - $item"
    done
    echo "=================================================================================="
  } >&2
fi
exit "$status"
