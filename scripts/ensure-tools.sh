#!/usr/bin/env bash
# The command-line tools the tests run as a user would: curl (every seed page's curl
# examples, tests/seeds), jq (docs/front-doors.md's walkthrough) and Go (the Go verifier in
# docs/verifying-signatures.md, tests/sdk/test_docs_snippets.py). Installed from Debian's
# packages when missing and we are root; otherwise a clear message, and `make test` stops.
set -euo pipefail
missing=()
for tool in curl jq; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
command -v go >/dev/null || [ -x /usr/lib/go/bin/go ] || missing+=(golang-go)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[tools] installing ${missing[*]} from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "[tools] the tests need ${missing[*]}: install them (e.g. apt-get install ${missing[*]})" >&2
  exit 1
fi
