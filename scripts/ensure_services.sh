#!/usr/bin/env bash
# The Celery cluster test (tests/system/test_celery_cluster.py) runs docker-compose.yaml's
# Postgres and Redis as plain processes: Debian's postgresql (initdb/postgres under
# /usr/lib/postgresql/*/bin) and redis-server. Install them when missing, as root or with
# sudo; otherwise say what to run. Nothing is started or enabled as a system service.
set -euo pipefail
have() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v redis-server >/dev/null 2>&1; }
if have; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "laionflow: the cluster test needs Postgres (initdb, postgres) and redis-server (Debian/Ubuntu: apt-get install postgresql redis-server)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "laionflow: run as root: apt-get install -y postgresql redis-server" >&2
    exit 1
  fi
fi
echo "laionflow: installing Debian postgresql and redis-server for the cluster test"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101: the packages' own services are not started (the test starts its own)
POLICY=/usr/sbin/policy-rc.d
CREATED=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null && $SUDO chmod +x "$POLICY"
  CREATED=1
fi
trap 'if [ -n "$CREATED" ]; then $SUDO rm -f "$POLICY"; fi' EXIT
$SUDO apt-get install -y -q --no-install-recommends postgresql redis-server >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends postgresql redis-server >/dev/null
}
have
