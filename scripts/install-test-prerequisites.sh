#!/usr/bin/env bash
# Installs what the test suites need on a fresh Debian/Ubuntu machine with Node, then nothing else:
# the npm packages from the lockfile, and the Debian packages below when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: coturn (turnserver, turnutils_uclient, turnutils_stunclient: real
# clients and servers to prove interop), iproute2 and util-linux (ip and unshare: the WebRTC tests run
# in network namespaces they make), openssl (a throwaway certificate for the TURN/TLS tests),
# chromium (headless browser calls, driven by playwright-core; no browser is ever downloaded) and
# iptables (the NAT lab's symmetric and cone NATs); gcc and libc6-dev build the relay's batched UDP
# addon, whose tests need it built.
DEBIAN_PACKAGES=(chromium coturn gcc iproute2 iptables libc6-dev openssl util-linux)

coturn_was_installed=false
dpkg-query -W -f='${Status}' coturn 2>/dev/null | grep -q "install ok installed" && coturn_was_installed=true
bash scripts/apt-install-missing.sh "${DEBIAN_PACKAGES[@]}"
# The tests start their own turnserver on loopback. Under systemd, Debian's coturn package enables
# and starts a system relay on every interface (its unit ignores TURNSERVER_ENABLED in
# /etc/default/coturn), so one installed here is stopped and disabled again. A coturn that was
# already installed is someone's own and is left alone.
if [ "$coturn_was_installed" = false ] && [ -d /run/systemd/system ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo systemctl disable --now coturn.service
fi

npm ci --no-audit --no-fund
# npm ci's postinstall builds the addon when it can; here it must, so a failure stops the run.
node scripts/build-native-udp.mjs
