#!/usr/bin/env bash
# The playground's browser test needs Debian's headless Chromium and its driver (never a browser downloaded at
# test time). Installs them when missing; does nothing when they are there. Without root or apt it only says
# how to get them: the test then skips with the same advice.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing chromium and chromium-driver for the playground's browser test..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
else
  echo "note: the playground's browser test will be skipped: install Chromium and its driver" \
    "(Debian: sudo apt-get install chromium chromium-driver)" >&2
fi
