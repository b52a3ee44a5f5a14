#!/usr/bin/env bash
# Regenerate docs/screenshots/ (ask.png, audit.png, documents-diff.png): runs the
# end-to-end browser test, which starts the real API with the local CPU generator and the
# real Streamlit UI, asks a real question and saves each page. Takes several minutes.
# The dashboard's (docs/screenshots/dashboard.png) needs a running API and a `metrics`
# key instead: scripts/dashboard_screenshot.py (README, "Operations", says how).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ci_browser.sh
mkdir -p docs/screenshots
MEDCITE_SCREENSHOTS_DIR="$PWD/docs/screenshots" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  DO_NOT_TRACK=1 .venv/bin/python -m pytest -q tests/ui/test_browser.py "$@"
ls -l docs/screenshots
