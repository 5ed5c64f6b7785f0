/**
 * The top self-time functions of a V8 .cpuprofile (as written by `node --cpu-prof`, e.g. through
 * `npm run bench -- --profile DIR`): `node --import tsx bench/profile-top.ts FILE [N]`.
 * Idle time ("(idle)") is left out of the percentages, so they are shares of the time the thread was busy.
 */
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { repoRoot } from "./lib/proc.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, countText] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write("usage: profile-top.ts FILE.cpuprofile [N]\n");
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfMicros = new Map<number, number>();
profile.samples.forEach((id, i) => selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const byFunction = new Map<string, number>();
let busy = 0;
for (const [id, micros] of selfMicros) {
  const node = byId.get(id)!;
  const name = node.callFrame.functionName || "(anonymous)";
  if (name === "(idle)") continue;
  busy += micros;
  const url = node.callFrame.url.startsWith("file://") ? relative(repoRoot, new URL(node.callFrame.url).pathname) : node.callFrame.url;
  const key = `${name} ${url}${url ? `:${node.callFrame.lineNumber + 1}` : ""}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
}
const top = [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(countText ?? 25));
process.stdout.write(`busy ${(busy / 1e6).toFixed(2)} s\n`);
for (const [key, micros] of top) process.stdout.write(`${((100 * micros) / busy).toFixed(1).padStart(5)} %  ${(micros / 1000).toFixed(0).padStart(6)} ms  ${key}\n`);
