#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the dashboard's browser tests (Playwright drives
# it through its executable path: Playwright's own browser download does not work on a closed
# network). Installs the distribution's package as root, else says exactly what is missing.
set -euo pipefail

say() { printf '[chromium] %s\n' "$*"; }

for candidate in "${HOOKPOST_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    say "using $candidate"
    exit 0
  fi
done

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  say "installing chromium from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  [ -x /usr/bin/chromium ] && { say "installed /usr/bin/chromium"; exit 0; }
fi

say "Chromium is missing: install Debian's 'chromium' package (or set HOOKPOST_CHROMIUM to a"
say "Chromium/Chrome binary); the dashboard's browser tests need it."
exit 1
