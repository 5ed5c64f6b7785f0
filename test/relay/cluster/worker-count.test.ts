/**
 * How many worker processes --relay-threads gives (relay/cluster/worker-count.ts), on made-up
 * machines: auto follows the CPUs unless the port range or the UDP I/O stands in the way, and says
 * why; an explicit count is taken, or refused with what to change.
 */
import { describe, expect, it } from "vitest";
import { AUTO_MIN_PORTS_PER_WORKER, relayWorkerCount, type WorkerCountInput } from "../../../relay/cluster/worker-count.js";

const host: WorkerCountInput = { relayThreads: "auto", cpus: 8, minPort: 49152, maxPort: 65535, udp: true, udpIo: "auto", native: { ok: true } };

describe("relayWorkerCount", () => {
  it("auto: one worker per CPU the process may use; 1 CPU is one process", () => {
    expect(relayWorkerCount(host)).toEqual({ ok: true, count: 8 });
    expect(relayWorkerCount({ ...host, cpus: 1 })).toEqual({ ok: true, count: 1 });
  });

  it("auto: no worker gets fewer than the minimum of relay ports; a small range runs fewer, or one", () => {
    expect(AUTO_MIN_PORTS_PER_WORKER).toBe(64);
    // 848 ports (the compose file's range): 13 workers of at least 64 ports, not 16.
    expect(relayWorkerCount({ ...host, cpus: 16, minPort: 49152, maxPort: 49999 })).toEqual({
      ok: true,
      count: 13,
      reduced: { from: 16, reason: "the relay port range holds 848 ports; auto gives each worker at least 64", level: "info" },
    });
    expect(relayWorkerCount({ ...host, minPort: 50000, maxPort: 50009 })).toMatchObject({ ok: true, count: 1, reduced: { from: 8 } });
    expect(relayWorkerCount({ ...host, cpus: 2, minPort: 50000, maxPort: 50127 })).toEqual({ ok: true, count: 2 });
  });

  it("auto: one process when UDP cannot be shared, at info for a chosen dgram and at warn for a missing addon", () => {
    expect(relayWorkerCount({ ...host, udpIo: "dgram" })).toMatchObject({ ok: true, count: 1, reduced: { from: 8, level: "info", reason: expect.stringMatching(/^--udp-io=dgram cannot share/) } });
    expect(relayWorkerCount({ ...host, native: { ok: false, reason: "no addon" } })).toMatchObject({
      ok: true,
      count: 1,
      reduced: { level: "warn", reason: "the native UDP I/O does not load (no addon); build it with npm run build:native" },
    });
    // Without UDP listeners nothing needs sharing.
    expect(relayWorkerCount({ ...host, udp: false, udpIo: "dgram" })).toEqual({ ok: true, count: 8 });
  });

  it("an explicit count is taken as given, or refused with what to change", () => {
    expect(relayWorkerCount({ ...host, relayThreads: 3, cpus: 1, minPort: 50000, maxPort: 50009 })).toEqual({ ok: true, count: 3 });
    expect(relayWorkerCount({ ...host, relayThreads: 1, udpIo: "dgram" })).toEqual({ ok: true, count: 1 });
    expect(relayWorkerCount({ ...host, relayThreads: 2, udpIo: "dgram" })).toEqual({
      ok: false,
      message: "--relay-threads 2: --udp-io=dgram cannot share a UDP port between processes; use --udp-io=native or auto, or run --relay-threads 1",
    });
    expect(relayWorkerCount({ ...host, relayThreads: 4, native: { ok: false, reason: "no addon" } })).toMatchObject({ ok: false, message: expect.stringMatching(/^--relay-threads 4: the native UDP I\/O does not load/) });
  });
});
