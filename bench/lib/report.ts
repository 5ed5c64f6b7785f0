/**
 * Summaries of the measurements: one row per server and load (medians over the rounds that ran, loss
 * pooled over all rounds), the ratios the targets are stated in, the table printed on stdout, and a
 * hand-written SVG bar chart of CPU per 1,000 echoed messages.
 */
import type { LoadSpec, Measurement } from "./loads.js";
import type { ServerName } from "./servers.js";

export interface Row {
  load: string;
  server: ServerName;
  status: "ok" | "n/a" | "failed";
  rounds: number;
  note?: string;
  messagesPerSecond?: number;
  lossPercent?: number;
  cpuPer1kWhole?: number;
  cpuPer1kData?: number;
  lifecyclesPerSecond?: number;
  cpuPer1kLifecycles?: number;
  idleCpuPercent?: Record<string, number>;
  rttP50Ms?: number;
  rttP99Ms?: number;
  rttMeanMs?: number;
  allocationsPerSecond?: number;
  rssMb?: Record<string, number>;
  /** Kernel UDP receive-buffer drops during the load, summed over the rounds (see Measurement). */
  udpReceiveBufferDrops?: number;
}

export interface Ratio {
  load: string;
  what: string;
  value: number | undefined;
  target: string;
  met: boolean | undefined;
}

export function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function medianOf(measurements: Measurement[], pick: (m: Measurement) => number | undefined): number | undefined {
  return median(measurements.map(pick).filter((value): value is number => value !== undefined && Number.isFinite(value)));
}

/** Per key (an idle-allocation count), the median over the rounds; undefined when no round has one. */
function medianRecord(measurements: Measurement[], pick: (m: Measurement) => Record<string, number> | undefined): Record<string, number> | undefined {
  const keys = [...new Set(measurements.flatMap((m) => Object.keys(pick(m) ?? {})))];
  if (keys.length === 0) return undefined;
  const out: Record<string, number> = {};
  for (const key of keys) {
    const value = medianOf(measurements, (m) => pick(m)?.[key]);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

export function summarize(measurements: Measurement[], loads: LoadSpec[], servers: ServerName[]): Row[] {
  const rows: Row[] = [];
  for (const load of loads) {
    for (const server of servers) {
      const all = measurements.filter((m) => m.load === load.id && m.server === server);
      if (all.length === 0) continue;
      const ok = all.filter((m) => m.status === "ok");
      const notes = [...new Set(all.map((m) => m.note).filter((note): note is string => note !== undefined))];
      const status = ok.length > 0 ? "ok" : all.some((m) => m.status === "n/a") ? "n/a" : "failed";
      const sent = ok.reduce((sum, m) => sum + (m.sent ?? 0), 0);
      const received = ok.reduce((sum, m) => sum + (m.received ?? 0), 0);
      const rssMb = medianRecord(ok, (m) => m.rssMb);
      const idleCpuPercent = medianRecord(ok, (m) => m.idleCpuPercent);
      rows.push({
        load: load.id,
        server,
        status,
        rounds: ok.length,
        ...(notes.length > 0 ? { note: notes.join("; ") } : {}),
        messagesPerSecond: medianOf(ok, (m) => m.messagesPerSecond),
        lossPercent: sent > 0 ? (100 * (sent - received)) / sent : undefined,
        cpuPer1kWhole: medianOf(ok, (m) => m.cpuPer1kWhole),
        cpuPer1kData: medianOf(ok, (m) => m.cpuPer1kData),
        lifecyclesPerSecond: medianOf(ok, (m) => m.lifecyclesPerSecond),
        cpuPer1kLifecycles: medianOf(ok, (m) => m.cpuPer1kLifecycles),
        rttP50Ms: medianOf(ok, (m) => m.rttP50Ms),
        rttP99Ms: medianOf(ok, (m) => m.rttP99Ms),
        rttMeanMs: medianOf(ok, (m) => m.rttMeanMs),
        allocationsPerSecond: medianOf(ok, (m) => m.allocationsPerSecond),
        ...(rssMb !== undefined ? { rssMb } : {}),
        ...(idleCpuPercent !== undefined ? { idleCpuPercent } : {}),
        ...(ok.some((m) => m.udpReceiveBufferDrops !== undefined) ? { udpReceiveBufferDrops: ok.reduce((sum, m) => sum + (m.udpReceiveBufferDrops ?? 0), 0) } : {}),
      });
    }
  }
  return rows;
}

/** Issue 16's targets, each a named constant. */
/** Whole-run CPU (and lifecycle CPU) ours ÷ coturn 4.17.1 with its defaults, at most. */
export const CPU_RATIO_TARGET = 1.0;
/** node-turn ÷ ours, whole-run CPU, at least, where node-turn runs. */
export const NODE_TURN_RATIO_TARGET = 4;
/** Resident memory with 10,000 idle allocations, below. */
export const RSS_LIMIT_MB = 100;
export const RSS_TARGET_ALLOCATIONS = 10_000;
/**
 * "Idle CPU stays flat in the number of idle allocations": with 10,000 idle allocations the settled server
 * uses at most this many % of a core more than with none (0.5 % of a core is 25 ms of CPU in a 5 s window;
 * a timer per allocation, the thing this guards against, costs far more).
 */
export const IDLE_FLAT_MARGIN_PERCENT = 0.5;

export function ratios(rows: Row[], loads: LoadSpec[]): Ratio[] {
  const find = (load: string, server: ServerName) => rows.find((row) => row.load === load && row.server === server && row.status === "ok");
  const out: Ratio[] = [];
  const info = (load: string, what: string, value: number | undefined) => {
    if (value !== undefined && Number.isFinite(value)) out.push({ load, what, value, target: "(for information)", met: undefined });
  };
  const divide = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
  for (const load of loads) {
    const ours = find(load.id, "ours");
    const coturn = find(load.id, "coturn");
    const coturn417 = find(load.id, "coturn-4.17");
    const fast = find(load.id, "coturn-4.17-fast");
    const nodeTurn = find(load.id, "node-turn");
    if (load.kind === "uclient" || load.kind === "gen") {
      const whole417 = divide(ours?.cpuPer1kWhole, coturn417?.cpuPer1kWhole);
      if (whole417 !== undefined) out.push({ load: load.id, what: "CPU/1k whole, ours ÷ coturn 4.17", value: whole417, target: `≤ ${CPU_RATIO_TARGET.toFixed(1)}`, met: whole417 <= CPU_RATIO_TARGET });
      info(load.id, "CPU/1k data, ours ÷ coturn 4.17", divide(ours?.cpuPer1kData, coturn417?.cpuPer1kData));
      info(load.id, "CPU/1k whole, ours ÷ coturn 4.17 fast flags", divide(ours?.cpuPer1kWhole, fast?.cpuPer1kWhole));
      info(load.id, "CPU/1k whole, ours ÷ coturn 4.6.1", divide(ours?.cpuPer1kWhole, coturn?.cpuPer1kWhole));
      info(load.id, "CPU/1k data, ours ÷ coturn 4.6.1", divide(ours?.cpuPer1kData, coturn?.cpuPer1kData));
      const nodeTurnRatio = divide(nodeTurn?.cpuPer1kWhole, ours?.cpuPer1kWhole);
      if (nodeTurnRatio !== undefined) {
        out.push({ load: load.id, what: "CPU/1k whole, node-turn ÷ ours", value: nodeTurnRatio, target: `≥ ${NODE_TURN_RATIO_TARGET}`, met: nodeTurnRatio >= NODE_TURN_RATIO_TARGET });
      }
      const coturnLossless = [coturn417, coturn, fast].filter((row) => row?.lossPercent === 0).map((row) => row!.server);
      if (ours?.lossPercent !== undefined && coturnLossless.length > 0) {
        out.push({ load: load.id, what: `loss % ours (0 on ${coturnLossless.join(", ")})`, value: ours.lossPercent, target: "= 0", met: ours.lossPercent === 0 });
      }
    } else if (load.kind === "lifecycle") {
      const ratio417 = divide(ours?.cpuPer1kLifecycles, coturn417?.cpuPer1kLifecycles);
      if (ratio417 !== undefined) out.push({ load: load.id, what: "CPU/1k lifecycles, ours ÷ coturn 4.17", value: ratio417, target: `≤ ${CPU_RATIO_TARGET.toFixed(1)}`, met: ratio417 <= CPU_RATIO_TARGET });
      info(load.id, "CPU/1k lifecycles, ours ÷ coturn 4.17 fast flags", divide(ours?.cpuPer1kLifecycles, fast?.cpuPer1kLifecycles));
      info(load.id, "CPU/1k lifecycles, ours ÷ coturn 4.6.1", divide(ours?.cpuPer1kLifecycles, coturn?.cpuPer1kLifecycles));
      const nodeTurnRatio = divide(nodeTurn?.cpuPer1kLifecycles, ours?.cpuPer1kLifecycles);
      if (nodeTurnRatio !== undefined) {
        out.push({ load: load.id, what: "CPU/1k lifecycles, node-turn ÷ ours", value: nodeTurnRatio, target: `≥ ${NODE_TURN_RATIO_TARGET}`, met: nodeTurnRatio >= NODE_TURN_RATIO_TARGET });
      }
    } else {
      info(load.id, "alloc/s ours ÷ coturn 4.17", divide(ours?.allocationsPerSecond, coturn417?.allocationsPerSecond));
      info(load.id, "alloc/s ours ÷ coturn 4.6.1", divide(ours?.allocationsPerSecond, coturn?.allocationsPerSecond));
      const top = load.checkpoints[load.checkpoints.length - 1] ?? 0;
      const full = top >= RSS_TARGET_ALLOCATIONS;
      const idleTop = ours?.idleCpuPercent?.[String(top)];
      const idleZero = ours?.idleCpuPercent?.["0"];
      if (idleTop !== undefined && idleZero !== undefined) {
        const growth = idleTop - idleZero;
        out.push({
          load: load.id,
          what: `idle CPU % of a core ours, ${top} idle − 0 idle`,
          value: growth,
          target: full ? `≤ ${IDLE_FLAT_MARGIN_PERCENT} (flat)` : `≤ ${IDLE_FLAT_MARGIN_PERCENT} (judged at ${RSS_TARGET_ALLOCATIONS})`,
          met: full ? growth <= IDLE_FLAT_MARGIN_PERCENT : undefined,
        });
      }
      info(load.id, "idle CPU % of a core, ours − coturn 4.17, 0 idle", idleZero !== undefined && coturn417?.idleCpuPercent?.["0"] !== undefined ? idleZero - coturn417.idleCpuPercent["0"] : undefined);
      const rss = ours?.rssMb?.[String(top)];
      if (rss !== undefined) {
        out.push({ load: load.id, what: `RSS MB ours, ${top} idle`, value: rss, target: full ? `< ${RSS_LIMIT_MB}` : `< ${RSS_LIMIT_MB} (judged at ${RSS_TARGET_ALLOCATIONS})`, met: full ? rss < RSS_LIMIT_MB : undefined });
      }
    }
  }
  return out;
}

/** One line per verdict: which of the judged targets hold and which do not. */
export function targetSummary(list: Ratio[]): string {
  const judged = list.filter((ratio) => ratio.met !== undefined);
  if (judged.length === 0) return "Targets: none judged in this run (a server or a full-size load is missing).";
  const failed = judged.filter((ratio) => ratio.met === false);
  const head = `Targets: ${judged.length - failed.length} of ${judged.length} met.`;
  return failed.length === 0 ? `${head} All hold.` : `${head} Not met: ${failed.map((ratio) => `${ratio.load} ${ratio.what} = ${fmt(ratio.value, 2)} (target ${ratio.target})`).join("; ")}.`;
}

function fmt(value: number | undefined, digits: number): string {
  if (value === undefined || !Number.isFinite(value)) return "-";
  return value.toFixed(digits);
}

function fmtRate(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return "-";
  return value >= 10_000 ? `${(value / 1000).toFixed(1)}k` : value.toFixed(0);
}

/** A Markdown table (readable on a terminal, pasteable into the README). */
export function table(rows: Row[]): string {
  const header = ["load", "server", "msg/s", "loss %", "CPU/1k whole", "CPU/1k data", "RTT p50/p99 ms", "RTT mean ms", "alloc/s", "cycles/s", "CPU/1k cycles", "RSS MB (idle allocs)", "idle CPU % (idle allocs)", "rounds", "notes"];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  for (const row of rows) {
    if (row.status !== "ok") {
      lines.push(`| ${row.load} | ${row.server} | ${row.status} |${" |".repeat(header.length - 5)} ${row.rounds} | ${row.status === "n/a" ? row.note ?? "" : `failed: ${row.note ?? "?"}`} |`);
      continue;
    }
    const rtt = row.rttP50Ms !== undefined ? `${fmt(row.rttP50Ms, 2)} / ${fmt(row.rttP99Ms, 2)}` : "-";
    const rss = row.rssMb ? Object.entries(row.rssMb).map(([count, mb]) => `${count}: ${mb.toFixed(0)}`).join(", ") : "-";
    const idle = row.idleCpuPercent ? Object.entries(row.idleCpuPercent).map(([count, percent]) => `${count}: ${percent.toFixed(2)}`).join(", ") : "-";
    const drops = row.udpReceiveBufferDrops ? `kernel UDP receive-buffer drops: ${row.udpReceiveBufferDrops}` : undefined;
    const notes = [row.note, drops].filter(Boolean).join("; ");
    lines.push(
      `| ${row.load} | ${row.server} | ${fmtRate(row.messagesPerSecond)} | ${fmt(row.lossPercent, 2)} | ${fmt(row.cpuPer1kWhole, 4)} | ${fmt(row.cpuPer1kData, 4)} | ${rtt} | ${fmt(row.rttMeanMs, 3)} | ${fmtRate(row.allocationsPerSecond)} | ${fmtRate(row.lifecyclesPerSecond)} | ${fmt(row.cpuPer1kLifecycles, 3)} | ${rss} | ${idle} | ${row.rounds} | ${notes} |`,
    );
  }
  return lines.join("\n");
}

export function ratioTable(list: Ratio[]): string {
  const lines = ["| load | ratio | value | target | met |", "|---|---|---|---|---|"];
  for (const ratio of list) {
    lines.push(`| ${ratio.load} | ${ratio.what} | ${fmt(ratio.value, 2)} | ${ratio.target} | ${ratio.met === undefined ? "-" : ratio.met ? "yes" : "NO"} |`);
  }
  return lines.join("\n");
}

const COLORS: Record<ServerName, string> = { ours: "#2f6fdf", coturn: "#e07b22", "coturn-4.17": "#b4531a", "coturn-4.17-fast": "#7a3510", "node-turn": "#4a9a4a" };

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A grouped horizontal bar chart of CPU seconds per 1,000 echoed messages, one group per load. */
export function svgChart(rows: Row[], servers: ServerName[], title: string): string {
  const loads = [...new Set(rows.filter((row) => row.cpuPer1kWhole !== undefined).map((row) => row.load))];
  const barHeight = 12;
  const groupGap = 10;
  const labelWidth = 190;
  const chartWidth = 520;
  const top = 48;
  const groupHeight = servers.length * barHeight + groupGap;
  const height = top + loads.length * groupHeight + 30;
  const max = Math.max(1e-9, ...rows.map((row) => row.cpuPer1kWhole ?? 0));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + chartWidth + 90}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  servers.forEach((server, i) => {
    parts.push(`<rect x="${labelWidth + i * 110}" y="28" width="10" height="10" fill="${COLORS[server]}"/>`);
    parts.push(`<text x="${labelWidth + i * 110 + 14}" y="37">${server}</text>`);
  });
  loads.forEach((load, g) => {
    const y0 = top + g * groupHeight;
    parts.push(`<text x="${labelWidth - 6}" y="${y0 + (servers.length * barHeight) / 2 + 4}" text-anchor="end">${escapeXml(load)}</text>`);
    servers.forEach((server, i) => {
      const row = rows.find((r) => r.load === load && r.server === server);
      const y = y0 + i * barHeight;
      if (row?.cpuPer1kWhole === undefined) {
        parts.push(`<text x="${labelWidth + 4}" y="${y + barHeight - 3}" fill="#888">${row?.status === "n/a" ? "n/a" : "-"}</text>`);
        return;
      }
      const width = Math.max(1, (row.cpuPer1kWhole / max) * chartWidth);
      parts.push(`<rect x="${labelWidth}" y="${y + 1}" width="${width.toFixed(1)}" height="${barHeight - 2}" fill="${COLORS[server]}"/>`);
      parts.push(`<text x="${(labelWidth + width + 4).toFixed(1)}" y="${y + barHeight - 3}">${row.cpuPer1kWhole.toFixed(4)}</text>`);
    });
  });
  parts.push(`<text x="${labelWidth}" y="${height - 10}" fill="#555">server CPU seconds per 1,000 echoed messages, whole run (lower is better)</text>`);
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
