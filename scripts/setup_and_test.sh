#!/usr/bin/env bash
# Install everything on a fresh machine and run the test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -r requirements-test.txt
# Headless Chromium for the browser test of the demo app (Playwright cannot download its own browser here).
if ! command -v chromium >/dev/null; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/python -m pytest "$@"
