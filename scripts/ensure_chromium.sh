#!/usr/bin/env bash
# The browser test drives Debian's chromium (headless, through Playwright's
# executable_path: Playwright's own browser download is never used). Install it when missing,
# as root or with sudo; otherwise say what to run.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "laionflow: the browser test needs chromium on PATH (Debian/Ubuntu: apt-get install chromium)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "laionflow: run as root: apt-get install -y chromium" >&2
    exit 1
  fi
fi
echo "laionflow: installing Debian chromium for the browser test"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null
}
command -v chromium >/dev/null
