/**
 * The load generator (lib/generator.ts) driven in steps, for bench/threads.ts: it sets up its allocations
 * once, then sends at one fixed rate after another, as the caller asks, over the same allocations.
 *
 * Conversation (JSON lines on stdout, lines on stdin), as runGenerator's:
 *   → {"event":"hello"}                       ← go
 *   → {"event":"ready","allocations":N,"relayedPorts":[...],"localPorts":[...]}
 *   ← step <rate> <seconds>                   → {"event":"step", ...StepResult}   (as often as asked)
 *   ← stop                                    → {"event":"result","result":GeneratorResult}, then it deletes
 *                                                every allocation (Refresh, LIFETIME 0) and exits
 * Each step counts its own messages: a message not echoed within the loss timeout is lost; one echoed
 * later (during the next step) counts as late there.
 */
import { createInterface } from "node:readline";
import { Generator, type GeneratorOptions } from "./generator.js";

/** Options of a stepped run: the generator's, with `stepped` set (bench/gen.ts dispatches on it). */
export interface SteppedOptions extends GeneratorOptions {
  stepped: true;
}

export interface StepResult {
  /** Messages per second asked for. */
  rate: number;
  sent: number;
  received: number;
  lost: number;
  late: number;
  sendSeconds: number;
}

/** The most steps one run takes, whatever the caller asks (a bound on a confused caller). */
const MAX_STEPS = 1_000;

export async function runSteppedGenerator(options: SteppedOptions): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  const queued: string[] = [];
  let wake: (() => void) | undefined;
  lines.on("line", (line) => {
    queued.push(line.trim());
    wake?.();
  });
  lines.on("close", () => process.exit(3)); // the caller is gone
  const nextLine = async (): Promise<string> => {
    while (queued.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    wake = undefined;
    return queued.shift()!;
  };
  const emit = (fields: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(fields)}\n`);

  const generator = new Generator(options);
  await generator.credentials();
  emit({ event: "hello" });
  while ((await nextLine()) !== "go");
  await generator.allocateUpTo(options.allocations);
  emit({ event: "ready", allocations: generator.allocated, relayedPorts: generator.relayedPorts, localPorts: generator.localPorts });
  for (let steps = 0; steps < MAX_STEPS; steps++) {
    const line = await nextLine();
    if (line === "stop") break;
    const match = /^step (\d+(?:\.\d+)?) (\d+(?:\.\d+)?)$/.exec(line);
    if (match === null) continue;
    const rate = Number(match[1]);
    // run() paces by its counters since the step began: every step starts from zero.
    generator.sent = 0;
    generator.received = 0;
    generator.lost = 0;
    generator.late = 0;
    generator.options.rate = rate;
    generator.options.durationSeconds = Number(match[2]);
    const sendSeconds = rate > 0 ? await generator.run() : 0;
    const step: StepResult = { rate, sent: generator.sent, received: generator.received, lost: generator.lost, late: generator.late, sendSeconds };
    emit({ event: "step", ...step });
  }
  emit({ event: "result", result: generator.result(0) });
  await generator.deleteAll();
  generator.close();
  lines.removeAllListeners("close");
  lines.close();
  process.exit(0);
}
