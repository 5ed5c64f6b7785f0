/**
 * How many worker processes a relay runs (`--relay-threads`): a pure decision, so every case is
 * tested without starting one (relay/main.ts applies it).
 *
 * `auto` is the CPUs the process may use (./available-cpus.ts), but never more than the relay port
 * range gives AUTO_MIN_PORTS_PER_WORKER each (a worker whose slice runs out refuses allocations while
 * another has ports to spare), and 1 when the UDP listeners cannot be shared between processes (Node's
 * dgram, or the native addon missing): it says why it ran fewer. An explicit number is taken as
 * given, or refused with what to change.
 */

/** `--relay-threads auto` gives each worker process at least this many relay ports. */
export const AUTO_MIN_PORTS_PER_WORKER = 64;

export interface WorkerCountInput {
  relayThreads: number | "auto";
  /** What `auto` means here (availableCpus()). */
  cpus: number;
  minPort: number;
  maxPort: number;
  /** UDP listeners on (--no-udp turns them off: then nothing needs sharing). */
  udp: boolean;
  udpIo: "auto" | "native" | "dgram";
  /** Whether the native UDP addon loads, and why not. */
  native: { ok: true } | { ok: false; reason: string };
}

export type WorkerCount =
  | { ok: true; count: number; reduced?: { from: number; reason: string; level: "info" | "warn" } }
  | { ok: false; message: string };

export function relayWorkerCount(input: WorkerCountInput): WorkerCount {
  const auto = input.relayThreads === "auto";
  const asked = auto ? input.cpus : (input.relayThreads as number);
  if (asked <= 1) return { ok: true, count: 1 };
  const blocker =
    input.udp && input.udpIo === "dgram"
      ? "--udp-io=dgram cannot share a UDP port between processes; use --udp-io=native or auto"
      : input.udp && !input.native.ok
        ? `the native UDP I/O does not load (${input.native.reason}); build it with npm run build:native`
        : null;
  if (blocker !== null) {
    if (!auto) return { ok: false, message: `--relay-threads ${asked}: ${blocker}, or run --relay-threads 1` };
    // The operator chose dgram: one process is what they asked for. A missing addon is a surprise.
    return { ok: true, count: 1, reduced: { from: asked, reason: blocker, level: input.udpIo === "dgram" ? "info" : "warn" } };
  }
  if (!auto) return { ok: true, count: asked };
  const ports = input.maxPort - input.minPort + 1;
  const fitting = Math.max(1, Math.floor(ports / AUTO_MIN_PORTS_PER_WORKER));
  if (fitting >= asked) return { ok: true, count: asked };
  return { ok: true, count: fitting, reduced: { from: asked, reason: `the relay port range holds ${ports} ports; auto gives each worker at least ${AUTO_MIN_PORTS_PER_WORKER}`, level: "info" } };
}
