/**
 * The relay keeps V8's young generation small (relay/young-generation.ts, imported first by
 * relay/main.ts): after a burst of allocations its semi-spaces do not grow to V8's 16 MB, which an
 * idle relay would otherwise keep for good (issue 16: 10,000 idle allocations under 100 MB RSS).
 *
 * Each case starts a real node process with a probe preloaded: on exit, the probe allocates
 * ~40 MB of objects that all survive (what makes V8 grow the young generation) and reports the
 * young generation's size. The control, a plain node process, must show the growth; the relay's
 * own start (`node --import tsx relay/main.ts`, here with --help so it exits at once) must not.
 * The bound is generous (V8 starts at 1-4 MB, and the TypeScript loader allocates before the flag
 * is set: under Node 24, the container's runtime, tsx leaves it at 8-16 MB, the bundle at 4 MB);
 * without the flag it reaches 32 MB (Node 20) or 64 MB (Node 24).
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const PROBE = `
import { getHeapSpaceStatistics } from "node:v8";
process.on("exit", () => {
  const keep = [];
  for (let i = 0; i < 600000; i++) keep.push({ i, text: "x" + i });
  const young = getHeapSpaceStatistics().find((space) => space.space_name === "new_space");
  process.stderr.write("young-generation-bytes=" + young.space_size + " kept=" + keep.length + "\\n");
});`;
const PROBE_URL = `data:text/javascript,${encodeURIComponent(PROBE)}`;
const MB = 2 ** 20;
/** Below V8's grown size (32 MB on Node 20, 64 MB on Node 24), above what a start without growth ends at. */
const SMALL_YOUNG_GENERATION_BYTES = 16 * MB;

function youngGenerationBytes(args: string[]): number {
  const run = spawnSync(process.execPath, ["--import", PROBE_URL, ...args], { cwd: process.cwd(), encoding: "utf8", timeout: 30_000 });
  const match = /young-generation-bytes=(\d+)/.exec(run.stderr);
  if (match === null) throw new Error(`the probe reported nothing (exit ${run.status}):\n${run.stderr}`);
  return Number(match[1]);
}

describe("the relay's young generation", () => {
  it("grows to V8's default in a plain node process (the control)", () => {
    expect(youngGenerationBytes(["-e", "0"])).toBeGreaterThan(SMALL_YOUNG_GENERATION_BYTES);
  });

  it("stays small in the relay as `npm run relay` starts it", () => {
    expect(youngGenerationBytes(["--import", "tsx", "relay/main.ts", "--help"])).toBeLessThanOrEqual(SMALL_YOUNG_GENERATION_BYTES);
  }, 30_000);
});
