#!/usr/bin/env bash
# Every test, as CI runs them (after scripts/install-test-prerequisites.sh): the relay's suite under the
# container's Node LTS (scripts/test-relay-on-lts.sh, in a loopback-only network namespace of its own,
# so its port bands are its own) at the same time as `npm test`. The two used to run one after the
# other; most of either's time is spent waiting on sockets, timers and child processes, so side by side
# they finish about three minutes sooner on two cores. Where no network namespace can be made, the LTS
# run goes after npm test instead. The LTS run's output is kept in a file and
# printed after npm test's, whole, so neither interleaves with the other. Exits non-zero if either failed.
set -uo pipefail
cd "$(dirname "$0")/.."

mkdir -p .tmp
lts_log=.tmp/test-relay-on-lts.log
# A process group of its own (setsid), so an interrupted run stops all of it: vitest and what it started.
setsid --wait env RELAYKIT_LTS_NEEDS_NETNS=1 bash scripts/test-relay-on-lts.sh > "$lts_log" 2>&1 &
lts_pid=$!
trap 'kill -TERM -- "-$lts_pid" 2>/dev/null; exit 130' INT TERM

rm -f .tmp/vitest.json  # so a run that fails before vitest reports nothing stale
npm test
npm_status=$?
wait "$lts_pid"
lts_status=$?
if [ "$lts_status" -eq 75 ]; then
  # No network namespace here (exit 75: it ran nothing): the LTS run goes now, after npm test, on this
  # machine's network, as it did before the two ran side by side.
  cat "$lts_log"
  bash scripts/test-relay-on-lts.sh > "$lts_log" 2>&1
  lts_status=$?
fi

echo
echo "=== the relay's suite under the container's Node LTS (scripts/test-relay-on-lts.sh; also in ${lts_log}) ==="
cat "$lts_log"
if [ "$npm_status" -ne 0 ] && [ -f .tmp/vitest.json ]; then
  # Said again here, last, because a CI record may keep only the tail of the output.
  echo "=== npm test, once more: what failed ==="
  node scripts/print-test-summary.mjs .tmp/vitest.json | sed -n '/^failed:/,$p'
fi
echo "=== npm test: exit ${npm_status}; relay suite under Node LTS: exit ${lts_status} ==="
[ "$npm_status" -eq 0 ] && [ "$lts_status" -eq 0 ]
