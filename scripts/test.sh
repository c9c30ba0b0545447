#!/usr/bin/env bash
# Set up everything the tests need (virtual environment, Python packages, Debian chromium for the browser test)
# and run the whole suite. This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements-test.txt
.venv/bin/python -m pip install --quiet -e .  # the package itself: examples/quickstart.py runs from any folder

# Browser tests drive Debian's chromium through Playwright (never `playwright install`: it downloads a browser).
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null || \
    echo "warning: could not install Debian chromium; browser tests will be skipped" >&2
fi

set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
