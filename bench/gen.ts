/**
 * The load generator as a process of its own (the benchmark pins it to the load core):
 * `node --import tsx bench/gen.ts '<GeneratorOptions as JSON>'`. See lib/generator.ts.
 */
import { runGenerator, type GeneratorOptions } from "./lib/generator.js";
import { runSteppedGenerator, type SteppedOptions } from "./lib/stepped-generator.js";

const json = process.argv[2];
if (json === undefined) {
  process.stderr.write("usage: gen.ts '<options JSON>' (started by bench/run.ts)\n");
  process.exit(2);
}
const options = JSON.parse(json) as GeneratorOptions | SteppedOptions;
// Stepped (bench/threads.ts): one rate after another over the same allocations; lib/stepped-generator.ts.
(("stepped" in options && options.stepped) ? runSteppedGenerator(options) : runGenerator(options)).catch((error: unknown) => {
  process.stderr.write(`gen: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
