/**
 * How many CPUs this process may use: what `--relay-threads` will default to (issue 17).
 *
 * `os.availableParallelism()` counts the CPUs of the process's affinity mask (taskset, a cpuset), but
 * not a CPU quota: a container started with `docker run --cpus=2` or a Kubernetes CPU limit of 2 on a
 * 64-core host sees 64 CPUs there, and 64 busy workers would share 2 CPUs' worth of time. The quota is
 * a cgroup setting, so it is read from the cgroup files: cgroup v2's `cpu.max` ("<quota> <period>" or
 * "max <period>") in the process's own cgroup and every ancestor, or cgroup v1's `cpu.cfs_quota_us`
 * and `cpu.cfs_period_us`. A quota of 1.5 CPUs allows 2 workers (rounded up: a half-used CPU still
 * helps), and the answer is never below 1.
 *
 * The parsers are pure; `availableCpus` takes the file reader and the affinity count as arguments so
 * tests can give it any machine.
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/** Reads a file's text, or null when it is not there (or not readable). */
export type ReadText = (path: string) => string | null;

/** The CPUs a quota of `quota` microseconds per `period` allows, rounded up; null for none or nonsense. */
export function cpusOfQuota(quota: number, period: number): number | null {
  if (!Number.isFinite(quota) || !Number.isFinite(period) || quota <= 0 || period <= 0) return null;
  return Math.max(1, Math.ceil(quota / period));
}

/** cgroup v2 `cpu.max`: "max 100000" (no quota) or "200000 100000" (2 CPUs); null for no quota. */
export function cpusOfCpuMax(text: string): number | null {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || quota === "max") return null;
  return cpusOfQuota(Number(quota), Number(period ?? "100000"));
}

/** cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`: a quota of -1 is none. */
export function cpusOfCfsQuota(quotaText: string, periodText: string): number | null {
  return cpusOfQuota(Number(quotaText.trim()), Number(periodText.trim()));
}

/**
 * The process's cgroup paths from `/proc/self/cgroup`: the v2 path ("0::/path") and the v1 path of
 * the `cpu` controller ("N:cpu,cpuacct:/path"), each null when absent.
 */
export function cgroupPathsOf(procSelfCgroup: string): { v2: string | null; v1Cpu: string | null } {
  let v2: string | null = null;
  let v1Cpu: string | null = null;
  for (const line of procSelfCgroup.split("\n")) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (match === null) continue;
    const [, controllers, path] = match as unknown as [string, string, string];
    if (controllers === "") v2 = path;
    else if (controllers.split(",").includes("cpu")) v1Cpu = path;
  }
  return { v2, v1Cpu };
}

/** `path` and each of its ancestors up to the root, deepest first: "/a/b" gives "/a/b", "/a", "/". */
export function selfAndAncestors(path: string): string[] {
  const parts = path.split("/").filter((part) => part !== "");
  const paths: string[] = [];
  for (let depth = parts.length; depth >= 0; depth--) paths.push(`/${parts.slice(0, depth).join("/")}`);
  return paths;
}

function join(root: string, path: string, file: string): string {
  return `${root}${path === "/" ? "" : path}/${file}`;
}

/** The smallest CPU quota on the process's cgroup and its ancestors (v2, else v1), or null for none. */
export function cgroupCpuLimit(read: ReadText, root = "/sys/fs/cgroup"): number | null {
  const self = read("/proc/self/cgroup");
  if (self === null) return null;
  const { v2, v1Cpu } = cgroupPathsOf(self);
  const limits: number[] = [];
  if (v2 !== null) {
    for (const path of selfAndAncestors(v2)) {
      const text = read(join(root, path, "cpu.max"));
      const cpus = text === null ? null : cpusOfCpuMax(text);
      if (cpus !== null) limits.push(cpus);
    }
  }
  if (limits.length === 0 && v1Cpu !== null) {
    // v1 mounts the controller at <root>/cpu (or cpu,cpuacct); a container sees its own cgroup as "/".
    for (const mount of [`${root}/cpu`, `${root}/cpu,cpuacct`]) {
      for (const path of selfAndAncestors(v1Cpu)) {
        const quota = read(join(mount, path, "cpu.cfs_quota_us"));
        const period = read(join(mount, path, "cpu.cfs_period_us"));
        const cpus = quota === null || period === null ? null : cpusOfCfsQuota(quota, period);
        if (cpus !== null) limits.push(cpus);
      }
      if (limits.length > 0) break;
    }
  }
  return limits.length === 0 ? null : Math.min(...limits);
}

function readTextOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** The CPUs this process may use: its affinity count, capped by any cgroup CPU quota; at least 1. */
export function availableCpus(read: ReadText = readTextOrNull, affinity: number = availableParallelism()): number {
  const limit = cgroupCpuLimit(read);
  return Math.max(1, limit === null ? affinity : Math.min(affinity, limit));
}
