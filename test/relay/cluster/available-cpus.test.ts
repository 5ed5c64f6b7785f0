/**
 * The CPUs the relay may use (relay/cluster/available-cpus.ts), the default of --relay-threads: the
 * affinity mask's count, capped by a cgroup CPU quota (v2 cpu.max on the cgroup or any ancestor, else
 * v1 cfs quota), rounded up, never below 1. Checked on parsed text, on made-up machines, and on this
 * machine under taskset and in a real cgroup with a quota.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { availableCpus, cgroupPathsOf, cpusOfCfsQuota, cpusOfCpuMax, selfAndAncestors } from "../../../relay/cluster/available-cpus.js";

const PRINT_CPUS = `import("./relay/cluster/available-cpus.ts").then((m) => console.log(m.availableCpus()))`;

/** A made-up machine: file path -> text. */
function machine(files: Record<string, string>): (path: string) => string | null {
  return (path) => files[path] ?? null;
}

describe("reading a CPU quota", () => {
  it("reads cgroup v2 cpu.max: none for max, rounded up CPUs otherwise", () => {
    expect(cpusOfCpuMax("max 100000\n")).toBeNull();
    expect(cpusOfCpuMax("200000 100000\n")).toBe(2);
    expect(cpusOfCpuMax("150000 100000")).toBe(2);
    expect(cpusOfCpuMax("50000 100000")).toBe(1);
    expect(cpusOfCpuMax("garbage")).toBeNull();
  });

  it("reads cgroup v1 cfs quota and period: -1 is none", () => {
    expect(cpusOfCfsQuota("-1\n", "100000\n")).toBeNull();
    expect(cpusOfCfsQuota("400000", "100000")).toBe(4);
    expect(cpusOfCfsQuota("0", "100000")).toBeNull();
  });

  it("finds the v2 path and the v1 cpu controller's path in /proc/self/cgroup", () => {
    expect(cgroupPathsOf("0::/system.slice/relay.service\n")).toEqual({ v2: "/system.slice/relay.service", v1Cpu: null });
    expect(cgroupPathsOf("4:memory:/x\n2:cpu,cpuacct:/docker/abc\n0::/\n")).toEqual({ v2: "/", v1Cpu: "/docker/abc" });
    expect(cgroupPathsOf("")).toEqual({ v2: null, v1Cpu: null });
  });

  it("walks a path's ancestors up to the root", () => {
    expect(selfAndAncestors("/a/b")).toEqual(["/a/b", "/a", "/"]);
    expect(selfAndAncestors("/")).toEqual(["/"]);
  });
});

describe("availableCpus on made-up machines", () => {
  it("is the affinity count when no cgroup sets a quota", () => {
    expect(availableCpus(machine({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "max 100000\n" }), 8)).toBe(8);
    expect(availableCpus(machine({}), 8)).toBe(8);
  });

  it("is capped by the smallest v2 quota on the cgroup and its ancestors", () => {
    const read = machine({
      "/proc/self/cgroup": "0::/kubepods/pod1/relay\n",
      "/sys/fs/cgroup/kubepods/pod1/relay/cpu.max": "max 100000",
      "/sys/fs/cgroup/kubepods/pod1/cpu.max": "250000 100000",
      "/sys/fs/cgroup/kubepods/cpu.max": "max 100000",
    });
    expect(availableCpus(read, 64)).toBe(3);
    expect(availableCpus(read, 2)).toBe(2); // the affinity mask is smaller still
  });

  it("falls back to the v1 cpu controller's quota", () => {
    const read = machine({
      "/proc/self/cgroup": "3:cpuset:/\n1:cpu:/docker/abc\n",
      "/sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us": "150000\n",
      "/sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us": "100000\n",
    });
    expect(availableCpus(read, 16)).toBe(2);
  });

  it("is never below 1", () => {
    expect(availableCpus(machine({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "1000 100000" }), 4)).toBe(1);
    expect(availableCpus(machine({}), 0)).toBe(1);
  });
});

describe("availableCpus on this machine", () => {
  it("counts the CPUs of the affinity mask: one under taskset -c 0", () => {
    const all = spawnSync(process.execPath, ["--import", "tsx", "-e", PRINT_CPUS], { encoding: "utf8", timeout: 30_000 });
    expect(all.stdout.trim(), all.stderr).toBe(String(availableParallelism()));
    const pinned = spawnSync("taskset", ["-c", "0", process.execPath, "--import", "tsx", "-e", PRINT_CPUS], { encoding: "utf8", timeout: 30_000 });
    expect(pinned.stdout.trim(), pinned.stderr).toBe("1");
  });

  // A real cgroup with a quota of one CPU: root and a writable cgroup v1 cpu controller or v2 tree.
  const v1 = "/sys/fs/cgroup/cpu";
  const writable = process.getuid?.() === 0 && (existsSync(`${v1}/cgroup.procs`) || existsSync("/sys/fs/cgroup/cgroup.subtree_control"));
  it.skipIf(!writable)("is capped by the CPU quota of the cgroup the process runs in", () => {
    const isV1 = existsSync(`${v1}/cgroup.procs`);
    const dir = `${isV1 ? v1 : "/sys/fs/cgroup"}/relaykit-cpus-test-${process.pid}`;
    mkdirSync(dir);
    try {
      if (isV1) {
        writeFileSync(`${dir}/cpu.cfs_period_us`, "100000");
        writeFileSync(`${dir}/cpu.cfs_quota_us`, "100000");
      } else {
        // v2 lets a child cgroup have cpu.max only once its parent hands the cpu controller down.
        writeFileSync("/sys/fs/cgroup/cgroup.subtree_control", "+cpu");
        writeFileSync(`${dir}/cpu.max`, "100000 100000");
      }
      // The child moves itself into the cgroup, then runs node there.
      const run = spawnSync("sh", ["-c", `echo $$ > ${dir}/cgroup.procs && exec "${process.execPath}" --import tsx -e '${PRINT_CPUS}'`], { encoding: "utf8", timeout: 30_000 });
      expect(run.stdout.trim(), run.stderr).toBe("1");
    } finally {
      rmdirSync(dir);
    }
  });
});
