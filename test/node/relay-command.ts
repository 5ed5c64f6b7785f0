/**
 * How the suites start the relay as a process: the bundle vitest.config.ts built for this run (what
 * the container image runs, built for this Node; a quarter of the start-up CPU of tsx), or, outside
 * vitest (a script run by hand), relay/main.ts through tsx as `npm run relay` runs it.
 */
export function relayEntryArgs(): string[] {
  const bundle = process.env["RELAYKIT_TEST_RELAY"];
  return bundle === undefined || bundle === "" ? ["--import", "tsx", "relay/main.ts"] : [bundle];
}
