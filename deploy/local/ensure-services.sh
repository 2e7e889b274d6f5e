#!/usr/bin/env bash
# Makes sure the local services the demo and the test suite use are there and running.
#   ensure-services.sh        Redis (the demo)
#   ensure-services.sh test   Redis, promtool/prometheus and chromium (the test suite)
set -euo pipefail

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server (Debian package)"
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  fi
  echo "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null

[ "${1:-}" = "test" ] || exit 0

# promtool (Debian package prometheus) checks and unit-tests the alert rules in tests/deploy/.
if ! command -v promtool >/dev/null 2>&1; then
  echo "installing promtool (Debian package prometheus)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
  # The package may start a prometheus server (where there is an init system): stop it so it does
  # not hold port 9090; only promtool is wanted here.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus && systemctl disable prometheus >/dev/null 2>&1 || true
  fi
  if pid=$(pgrep -x prometheus); then
    kill $pid || true
  fi
fi
promtool --version >/dev/null

# Chromium (Debian package) runs the tracking page's browser test (tests/consumers/tracking/);
# Playwright drives this one and never downloads a browser of its own.
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
/usr/bin/chromium --version >/dev/null 2>&1
