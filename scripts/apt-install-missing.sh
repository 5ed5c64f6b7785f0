#!/usr/bin/env bash
# Installs the Debian packages given as arguments that are not installed yet (apt-get update first),
# as root or through sudo; does nothing when all are there. Prints the list it installs.
# Used by scripts/install-test-prerequisites.sh and bench/servers/build-coturn.sh.
set -euo pipefail

missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then exit 0; fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing Debian packages: ${missing[*]}"
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
