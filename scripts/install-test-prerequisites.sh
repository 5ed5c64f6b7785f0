#!/usr/bin/env bash
# Installs what the test suites need on a fresh Debian/Ubuntu machine with Node, then nothing else:
# the npm packages from the lockfile, and the Debian packages below when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use. The signaling suites need none; coturn's tools, chromium and
# iptables join this list with the suites that use them (credentials, relay, end-to-end).
DEBIAN_PACKAGES=()

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing Debian packages: ${missing[*]}"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

npm ci --no-audit --no-fund
