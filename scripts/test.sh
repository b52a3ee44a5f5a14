#!/usr/bin/env bash
# The test command: install (idempotent), lint, then the whole suite with the real
# embedding model, embedded Qdrant, FastAPI app and CPU generator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DO_NOT_TRACK=1 .venv/bin/python -m pytest -q "$@"
