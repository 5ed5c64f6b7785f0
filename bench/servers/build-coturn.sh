#!/usr/bin/env bash
# Builds the newest coturn (4.17.1) once, for the benchmark to run side by side with ours and with
# Debian's 4.6.1: binaries (turnserver, turnutils_uclient, turnutils_peer, ...) in
# .tmp/coturn-4.17.1/build/bin, ignored by git. A second run finds them and does nothing.
#
# The source is not a project dependency: the team's kit keeps it beside the repository, in
# ../shared/peers/coturn-4.17.1.tar.gz (or give the tarball's path as the first argument). Without it
# this says so and exits 3, and the benchmark carries on with Debian's coturn alone.
#
# Needs cmake, pkg-config and coturn's libraries (Debian: libevent-dev libssl-dev libsqlite3-dev
# libmicrohttpd-dev libhiredis-dev); installs the missing ones with apt-get (as root or through sudo).
# About 5 minutes on one core.
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=4.17.1
tarball="${1:-../shared/peers/coturn-${VERSION}.tar.gz}"
dir=".tmp/coturn-${VERSION}"
bin="${dir}/build/bin"

if [ -x "${bin}/turnserver" ] && [ -x "${bin}/turnutils_uclient" ] && [ -x "${bin}/turnutils_peer" ]; then
  echo "coturn ${VERSION}: already built in ${bin}"
  exit 0
fi
if [ ! -f "$tarball" ]; then
  echo "coturn ${VERSION}: no source at ${tarball}; the benchmark runs without it (give the tarball's path as the first argument)" >&2
  exit 3
fi

bash scripts/apt-install-missing.sh cmake pkg-config libevent-dev libssl-dev libsqlite3-dev libmicrohttpd-dev libhiredis-dev

rm -rf "$dir"
mkdir -p "$dir"
tar xzf "$tarball" -C "$dir"
source_dir="${dir}/coturn-${VERSION}"
if [ ! -f "${source_dir}/CMakeLists.txt" ]; then
  echo "coturn ${VERSION}: ${tarball} does not unpack to coturn-${VERSION}/ with a CMakeLists.txt" >&2
  exit 1
fi
cmake -S "$source_dir" -B "${dir}/build" -DCMAKE_BUILD_TYPE=Release >"${dir}/cmake.log" 2>&1 || {
  tail -40 "${dir}/cmake.log" >&2
  exit 1
}
cmake --build "${dir}/build" -j "$(nproc)" >"${dir}/build.log" 2>&1 || {
  tail -40 "${dir}/build.log" >&2
  exit 1
}
for tool in turnserver turnutils_uclient turnutils_peer; do
  if [ ! -x "${bin}/${tool}" ]; then
    echo "coturn ${VERSION}: the build made no ${bin}/${tool}; see ${dir}/build.log" >&2
    exit 1
  fi
done
echo "coturn ${VERSION}: built in ${bin} ($("${bin}/turnserver" --version 2>/dev/null | head -1 || true))"
