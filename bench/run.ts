/**
 * `npm run bench`: our relay against coturn and node-turn, same settings, same loads, interleaved.
 * See bench/README.md for what each figure means. Flags:
 *   --quick                 the CI smoke: 1 round, tiny loads, all three servers, a few seconds each
 *   --rounds N              rounds per load (default 3)
 *   --duration S            seconds of sending for the generator's long runs (default 10)
 *   --messages N            messages per uclient client (default 2000 / 1000 / 500 for 10 / 100 / 200 clients)
 *   --idle A,B              idle-allocation checkpoints (default 1000,10000)
 *   --lifecycles N          allocation lifecycles in the lifecycle load (default 2000; quick 100)
 *   --warm-up N             untimed allocation lifecycles every server runs before every load (default 500; quick 50; 0: none);
 *                           outside --quick a short untimed run of the load itself follows them
 *   --servers a,b           any of ours,coturn,coturn-4.17,coturn-4.17-fast,node-turn (default all built;
 *                           quick leaves coturn-4.17-fast out unless named)
 *   --loads p,q             loads whose id starts with any of these (e.g. uclient-send,gen,lifecycle,alloc)
 *   --out FILE              JSON results (default bench/results/<date>.json)
 *   --svg FILE              the chart (default bench/results/latest.svg)
 *   --loss-timeout MS       a message not echoed within this is lost (default 1000)
 *   --time-limit S          stop everything after this many seconds (default 3600; quick 90)
 *   --no-pin                do not pin server and load to separate cores
 *   --ours-default-limiter  keep our relay's default --unauthenticated-rate (the benchmark raises it)
 *   --ours-udp-io IO        native (default: the batched addon, which must be built) or dgram
 *   --ours-tcp-io IO        native (default: the same addon's TCP) or net (Node's sockets), for TURN over TCP
 *   --ours-node NODE        image (default: the Node the relay's image runs, relay/Dockerfile's NODE_VERSION,
 *                           when scripts/test-relay-on-lts.sh has installed it; else this Node, and the notes say so),
 *                           current (the Node running the bench), or a path to a node binary
 *   --ours-runtime-env ENV  image (default: the runtime ENV line of relay/Dockerfile, MALLOC_ARENA_MAX and
 *                           NODE_OPTIONS, as the image runs the relay) or none (the bench's own environment only)
 *   --profile DIR           run our relay under `node --cpu-prof`, one .cpuprofile per run in DIR
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { dirname, join } from "node:path";
import { defineLoads, notApplicable, warmUp, runAllocations, runGenerated, runLifecycles, runUclient, type LoadSpec, type Measurement } from "./lib/loads.js";
import { installCleanupHandlers, onPath, pinning, repoRoot, runningPids, startedProcesses, stopAll } from "./lib/proc.js";
import { median, ratios, ratioTable, summarize, svgChart, table, targetSummary } from "./lib/report.js";
import { clientTools, COTURN_4_17_BIN, coturn417Built, imageNodePath, imageNodeVersion, imageRuntimeEnv, isCoturn417, missingPrerequisite, OURS_BENCH_UNAUTHENTICATED_RATE, SERVER_NAMES, startServer, type ClientTools, type ServerName } from "./lib/servers.js";

interface Options {
  quick: boolean;
  rounds: number;
  durationSeconds: number;
  messages: number | undefined;
  idle: number[];
  lifecycles: number;
  /** Untimed lifecycles before every measurement (loads.ts warmUp). */
  warmUp: number;
  servers: ServerName[];
  loads: string[] | undefined;
  out: string;
  svg: string;
  lossTimeoutMs: number;
  timeLimitSeconds: number;
  pin: boolean;
  oursDefaultLimiter: boolean;
  /** What carries our relay's UDP; native fails the start when the addon is not built. */
  oursUdpIo: "native" | "dgram";
  oursTcpIo: "native" | "net";
  /** The Node our relay runs on, and how the notes name it. */
  oursNode: { path: string; version: string; label: string };
  /** What our relay's environment adds to the bench's: the image's runtime ENV, or nothing. */
  oursEnv: Record<string, string>;
  profileDir: string | undefined;
  /** coturn's client tools for the uclient loads and the echo peer, one set for every server. */
  tools: ClientTools;
}

const USAGE = "usage: npm run bench -- [--quick] [--rounds N] [--duration S] [--messages N] [--idle 1000,10000] [--lifecycles N] [--warm-up N] [--servers ours,coturn,coturn-4.17,coturn-4.17-fast,node-turn] [--loads prefixes] [--out FILE] [--svg FILE] [--loss-timeout MS] [--time-limit S] [--no-pin] [--ours-default-limiter] [--ours-udp-io native|dgram] [--ours-tcp-io native|net] [--ours-node image|current|PATH] [--ours-runtime-env image|none] [--profile DIR]";

function parseArgs(argv: string[]): Options {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}\n${USAGE}`);
    const eq = arg.indexOf("=");
    if (eq > 0) values.set(arg.slice(2, eq), arg.slice(eq + 1));
    else if (["quick", "no-pin", "ours-default-limiter"].includes(arg.slice(2))) flags.add(arg.slice(2));
    else {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      values.set(arg.slice(2), next);
    }
  }
  const known = new Set(["ours-udp-io", "ours-tcp-io", "ours-node", "ours-runtime-env", "profile", "rounds", "duration", "messages", "idle", "lifecycles", "warm-up", "servers", "loads", "out", "svg", "loss-timeout", "time-limit"]);
  for (const key of values.keys()) if (!known.has(key)) throw new Error(`unknown option --${key}\n${USAGE}`);
  const quick = flags.has("quick");
  const number = (name: string, fallback: number, min: number) => {
    const text = values.get(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value < min) throw new Error(`--${name} must be a number ≥ ${min}, got ${text}`);
    return value;
  };
  // By default every server this machine has: coturn 4.17.1 only once built (main() says so when not). The
  // quick smoke leaves out the fast-flags row (the same binary, its flags checked by a full run) to stay
  // under a minute.
  const available = SERVER_NAMES.filter((name) => (!isCoturn417(name) || coturn417Built()) && !(quick && name === "coturn-4.17-fast"));
  const servers = (values.get("servers")?.split(",") ?? available).map((name) => {
    if (!SERVER_NAMES.includes(name as ServerName)) throw new Error(`unknown server ${name}: use ${SERVER_NAMES.join(", ")}`);
    return name as ServerName;
  });
  const date = new Date().toISOString().replace(/[:]/g, "-").replace(/\..*/, "");
  const idle = (values.get("idle") ?? (quick ? "20,100" : "1000,10000")).split(",").map(Number);
  if (idle.some((value) => !Number.isInteger(value) || value < 1) || idle.some((value, i) => i > 0 && value <= idle[i - 1]!)) {
    throw new Error("--idle takes ascending positive integers, e.g. 1000,10000");
  }
  return {
    quick,
    rounds: Math.floor(number("rounds", quick ? 1 : 3, 1)),
    durationSeconds: number("duration", quick ? 0.5 : 10, 0.1),
    messages: values.has("messages") ? Math.floor(number("messages", 1, 1)) : undefined,
    idle,
    lifecycles: Math.floor(number("lifecycles", quick ? 100 : 2000, 1)),
    warmUp: Math.floor(number("warm-up", quick ? 50 : 500, 0)),
    servers,
    loads: values.get("loads")?.split(","),
    out: values.get("out") ?? join(repoRoot, "bench", "results", `${date}${quick ? "-quick" : ""}.json`),
    svg: values.get("svg") ?? join(repoRoot, "bench", "results", quick ? "latest-quick.svg" : "latest.svg"),
    lossTimeoutMs: number("loss-timeout", 1000, 10),
    timeLimitSeconds: number("time-limit", quick ? 90 : 3600, 1),
    pin: !flags.has("no-pin"),
    oursDefaultLimiter: flags.has("ours-default-limiter"),
    oursUdpIo: oneOf("ours-udp-io", values.get("ours-udp-io"), ["native", "dgram"]),
    oursTcpIo: oneOf("ours-tcp-io", values.get("ours-tcp-io"), ["native", "net"]),
    oursNode: oursNode(values.get("ours-node")),
    oursEnv: oneOf("ours-runtime-env", values.get("ours-runtime-env"), ["image", "none"]) === "image" ? imageRuntimeEnv() : {},
    profileDir: values.get("profile"),
    tools: clientTools(),
  };
}

function machine(): Record<string, unknown> {
  let coturnVersion: string | undefined;
  try {
    coturnVersion = execFileSync("turnserver", ["--version"], { encoding: "utf8", timeout: 5_000 }).trim().split("\n").pop();
  } catch {
    coturnVersion = undefined;
  }
  let coturn417Version: string | undefined;
  if (coturn417Built()) {
    try {
      coturn417Version = execFileSync(join(COTURN_4_17_BIN, "turnserver"), ["--version"], { encoding: "utf8", timeout: 5_000 }).trim().split("\n").pop();
    } catch {
      coturn417Version = undefined;
    }
  }
  return {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    kernel: release(),
    node: process.version,
    coturn: coturnVersion,
    coturn417: coturn417Version,
    loadAverageAtStart: loadavg().map((value) => Number(value.toFixed(2))),
  };
}

function uclientMessages(options: Options): (clients: number) => number {
  if (options.messages !== undefined) return () => options.messages!;
  if (options.quick) return () => 20;
  return (clients) => (clients <= 10 ? 2000 : clients <= 100 ? 1000 : 500);
}

/** The warm-up's CPU-seconds per server, median over its measurements, as one line of text. */
function warmUpSummary(measurements: Measurement[], servers: ServerName[]): string {
  return servers
    .map((server) => {
      const value = median(measurements.filter((m) => m.server === server && m.warmUpCpuSeconds !== undefined).map((m) => m.warmUpCpuSeconds!));
      return value === undefined ? `${server} -` : `${server} ${value.toFixed(2)} s`;
    })
    .join(", ");
}

async function measure(server: ServerName, load: LoadSpec, options: Options, cores: ReturnType<typeof pinning>, round: number): Promise<Measurement> {
  const base = { server, load: load.id, round };
  const na = notApplicable(server, load);
  if (na !== undefined) return { ...base, status: "n/a", note: na };
  // One relay process: this bench reads one process's CPU and pins it to one core (where auto is 1
  // anyway); `npm run bench:threads` compares thread counts.
  const started = await startServer(server, {
    core: cores.server,
    oursDefaultLimiter: options.oursDefaultLimiter,
    oursUdpIo: options.oursUdpIo,
    oursTcpIo: options.oursTcpIo,
    oursNode: options.oursNode.path,
    oursEnv: options.oursEnv,
    cpuProfileDir: options.profileDir,
    ...(server === "ours" && { relayThreads: 1 }),
  });
  try {
    // The quick run checks that the harness works: its tiny loads get the lifecycles only.
    const dataWarmUp = options.quick ? null : { tools: options.tools, lossTimeoutMs: options.lossTimeoutMs };
    const warmUpCpuSeconds = options.warmUp > 0 ? await warmUp(started, load, options.warmUp, cores.load, dataWarmUp) : undefined;
    const result =
      load.kind === "uclient"
        ? await runUclient(started, load, cores.load, options.tools)
        : load.kind === "gen"
          ? await runGenerated(started, load, cores.load, options.lossTimeoutMs, options.tools)
          : load.kind === "lifecycle"
            ? await runLifecycles(started, load, cores.load)
            : await runAllocations(started, load, cores.load);
    return { ...base, ...result, ...(warmUpCpuSeconds !== undefined ? { warmUpCpuSeconds } : {}) };
  } catch (error) {
    return { ...base, status: "failed", note: (error as Error).message.split("\n")[0] };
  } finally {
    await started.stop();
  }
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  installCleanupHandlers();
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: over the time limit of ${options.timeLimitSeconds} s, stopping everything\n`);
    void stopAll().finally(() => process.exit(124));
  }, options.timeLimitSeconds * 1000);
  watchdog.unref();

  for (const server of options.servers) {
    const missing = missingPrerequisite(server);
    if (missing !== undefined) throw new Error(missing);
  }
  for (const tool of [options.tools.uclient, options.tools.peer]) {
    if (!tool.includes("/") && !onPath(tool)) throw new Error(`${tool} not found: apt-get install coturn (it brings coturn's client tools)`);
  }
  if (!coturn417Built()) {
    process.stderr.write("bench: coturn 4.17.1 is not built (bash bench/servers/build-coturn.sh, from ../shared/peers/coturn-4.17.1.tar.gz); comparing with Debian's coturn only\n");
  }
  process.stderr.write(`bench: uclient loads run ${options.tools.from}'s turnutils_uclient and turnutils_peer for every server\n`);
  const cores = pinning(!options.pin);
  // The harness itself (sampling, pipes) runs beside the load, never on the server's core.
  if (cores.load !== undefined) {
    try {
      execFileSync("taskset", ["-a", "-p", "-c", String(cores.load), String(process.pid)], { stdio: "ignore" });
    } catch {
      // not fatal: the harness is mostly idle
    }
  }
  const allLoads = defineLoads({ quick: options.quick, durationSeconds: options.durationSeconds, uclientMessages: uclientMessages(options), idleCheckpoints: options.idle, lifecycles: options.lifecycles });
  const loads = options.loads === undefined ? allLoads : allLoads.filter((load) => options.loads!.some((prefix) => load.id.startsWith(prefix)));
  if (loads.length === 0) throw new Error(`no load matches ${options.loads?.join(",")}: loads are ${allLoads.map((load) => load.id).join(", ")}`);

  const info = machine();
  process.stderr.write(
    `bench: ${loads.length} loads × ${options.servers.length} servers × ${options.rounds} rounds; server core ${cores.server ?? "any"}, load core ${cores.load ?? "any"}; load average ${String(info["loadAverageAtStart"])}\n`,
  );
  const measurements: Measurement[] = [];
  const started = Date.now();
  for (const load of loads) {
    for (let round = 0; round < options.rounds; round++) {
      // Interleaved, and the order rotates each round: A B C, B C A, C A B.
      const order = options.servers.map((_, i) => options.servers[(i + round) % options.servers.length]!);
      for (const server of order) {
        const measurement = await measure(server, load, options, cores, round + 1);
        measurements.push(measurement);
        const brief =
          measurement.status === "ok"
            ? [
                measurement.messagesPerSecond !== undefined ? `${measurement.messagesPerSecond.toFixed(0)} msg/s` : undefined,
                measurement.lossPercent !== undefined ? `loss ${measurement.lossPercent.toFixed(2)} %` : undefined,
                measurement.cpuPer1kWhole !== undefined ? `CPU/1k whole ${measurement.cpuPer1kWhole.toFixed(4)} s` : undefined,
                measurement.cpuPer1kData !== undefined ? `data ${measurement.cpuPer1kData.toFixed(4)} s` : undefined,
                measurement.lifecyclesPerSecond !== undefined ? `${measurement.lifecyclesPerSecond.toFixed(0)} lifecycles/s` : undefined,
                measurement.cpuPer1kLifecycles !== undefined ? `CPU/1k lifecycles ${measurement.cpuPer1kLifecycles.toFixed(3)} s` : undefined,
                measurement.idleCpuPercent !== undefined ? `idle CPU ${JSON.stringify(Object.fromEntries(Object.entries(measurement.idleCpuPercent).map(([k, v]) => [k, Number(v.toFixed(2))])))} %` : undefined,
                measurement.idleSettleMs !== undefined ? `settled after ${JSON.stringify(measurement.idleSettleMs)} ms` : undefined,
                measurement.allocationsPerSecond !== undefined ? `${measurement.allocationsPerSecond.toFixed(0)} alloc/s` : undefined,
                measurement.warmUpCpuSeconds !== undefined ? `warm-up ${measurement.warmUpCpuSeconds.toFixed(2)} CPU-s` : undefined,
                measurement.rssMb !== undefined ? `RSS ${JSON.stringify(Object.fromEntries(Object.entries(measurement.rssMb).map(([k, v]) => [k, Math.round(v)])))} MB` : undefined,
              ]
                .filter(Boolean)
                .join(", ")
            : `${measurement.status}: ${measurement.note ?? ""}`.slice(0, 160);
        process.stderr.write(`  [${((Date.now() - started) / 1000).toFixed(0)} s] ${load.id} ${server} round ${round + 1}: ${brief}\n`);
      }
    }
  }
  await stopAll();

  const rows = summarize(measurements, loads, options.servers);
  const ratioList = ratios(rows, loads);
  const notes = [
    options.oursDefaultLimiter
      ? "ours ran with its default --unauthenticated-rate (20/s per source IP, burst 40)"
      : `ours ran with --unauthenticated-rate=${OURS_BENCH_UNAUTHENTICATED_RATE}: every allocation starts with a 401 from 127.0.0.1, which the default (20/s, burst 40) throttles; coturn has no such limiter`,
    `ours ran with --udp-io=${options.oursUdpIo}${options.oursUdpIo === "native" ? " (the batched recvmmsg addon)" : " (Node's dgram)"} and --tcp-io=${options.oursTcpIo}${options.oursTcpIo === "native" ? " (the addon's TCP)" : " (Node's net)"}, on ${options.oursNode.label}, ${Object.keys(options.oursEnv).length > 0 ? `with the image's runtime environment (${Object.entries(options.oursEnv).map(([name, value]) => `${name}=${value}`).join(" ")})` : "without the image's runtime environment (--ours-runtime-env none)"}`,
    "node-turn ran unmodified with one static user (it has no TURN REST scheme)",
    "uclient loads: -c -z 1 (one message per ms per client); msg/s is echoed messages over the span the server was busy",
    "CPU/1k whole: server CPU from just before the first client's first packet until the last client is gone (uclient exited; the generator deleted its allocations and exited), per 1,000 echoed messages; CPU/1k data: uclient from its \"Total connect time\" line, the generator over its send phase",
    "every server but node-turn listens on UDP, TCP and TLS (one self-signed certificate per run) for every load",
    options.warmUp > 0
      ? `every server ran ${options.warmUp} untimed allocation lifecycles over the load's transport before each load${options.quick ? "" : ", then a short untimed run of the load itself (uclient: a tenth of its messages; the generator: 1 s)"} (steady state, as a relay that has served before); their CPU, median per server: ${warmUpSummary(measurements, options.servers)}`
      : "no warm-up (--warm-up 0): every figure includes each server's first allocations from a cold start",
  ];
  const date = new Date().toISOString();
  const summary = { date, machine: { ...info, loadAverageAtEnd: loadavg().map((value) => Number(value.toFixed(2))) }, options, notes, rows, ratios: ratioList, measurements, processes: startedProcesses() };
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(summary, null, 2)}\n`);
  mkdirSync(dirname(options.svg), { recursive: true });
  writeFileSync(options.svg, svgChart(rows, options.servers, `relaykit bench ${date.slice(0, 10)}: ${String(info["cpu"] ?? "")}, ${String(info["cores"])} cores`));

  const out = [
    "",
    `## relaykit bench, ${date} (${String(info["cpu"])}, ${String(info["cores"])} cores, Node ${process.version}, ours on Node ${options.oursNode.version}, ${String(info["coturn"] ?? "coturn ?")}${info["coturn417"] !== undefined ? ` and ${String(info["coturn417"])}` : ""}; uclient from ${options.tools.from}; load average ${String(info["loadAverageAtStart"])})`,
    "",
    table(rows),
    "",
    "### Ratios",
    "",
    ratioList.length > 0 ? ratioTable(ratioList) : "(no ratio: a server is missing)",
    "",
    targetSummary(ratioList),
    "",
    ...notes.map((note) => `- ${note}`),
    "",
    `JSON: ${options.out}`,
    `chart: ${options.svg}`,
    "",
  ];
  process.stdout.write(out.join("\n"));
  const left = runningPids();
  if (left.length > 0) {
    process.stderr.write(`bench: processes still registered after the run: ${left.join(", ")}\n`);
    return 1;
  }
  return 0;
}

main()
  .then((code) => process.exit(code))
  .catch(async (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    await stopAll();
    process.exit(1);
  });

/**
 * The Node our relay runs on. By default the one its image runs: that is what an operator's relay
 * runs on (against Node 20 it measured inside the noise, docs/benchmarks.md, but the figure should
 * be the shipped one's).
 */
function oursNode(given: string | undefined): { path: string; version: string; label: string } {
  const running = { path: process.execPath, version: process.version, label: `Node ${process.version}, the one running the bench` };
  if (given === "current") return running;
  if (given !== undefined && given !== "image") {
    if (!existsSync(given)) throw new Error(`--ours-node ${given}: no such file\n${USAGE}`);
    const version = execFileSync(given, ["--version"], { encoding: "utf8", timeout: 5_000 }).trim();
    return { path: given, version, label: `Node ${version} (${given})` };
  }
  const version = imageNodeVersion();
  const image = imageNodePath(version);
  if (image !== undefined) return { path: image, version: `v${version}`, label: `Node v${version}, the one the relay's image runs` };
  return { ...running, label: `${running.label}: the image's Node v${version} is not installed (bash scripts/test-relay-on-lts.sh installs it)` };
}

/** The option's value among `choices`; the first when not given. */
function oneOf<T extends string>(name: string, given: string | undefined, choices: readonly [T, ...T[]]): T {
  if (given === undefined) return choices[0];
  const chosen = choices.find((choice) => choice === given);
  if (chosen === undefined) throw new Error(`--${name} must be ${choices.join(" or ")}, got ${given}\n${USAGE}`);
  return chosen;
}
