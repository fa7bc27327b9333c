#!/usr/bin/env bash
# Node.js >= 18.18 and npm for the Node SDK's tests and the seed's JS receivers
# (tests/seeds_node): installs Debian's nodejs and npm when they are missing and we are root.
# Never fails `make test` by itself: without node, the tests that need it fail and say so.
set -uo pipefail
node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null &&
    node -e 'const [a, b] = process.versions.node.split(".").map(Number);
             process.exit(a > 18 || (a === 18 && b >= 18) ? 0 : 1)' 2>/dev/null
}
node_ok && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[node] installing Debian's nodejs and npm"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
node_ok || echo "[node] Node.js >= 18.18 with npm is missing (found: $(node --version 2>&1 | head -1));" \
  "tests/seeds_node will fail until it is installed" >&2
exit 0
