/**
 * Runs test/e2e/werift-peer.ts as a child process (optionally inside a named namespace with
 * `ip netns exec`) and reads its JSON summary. Bounded: the child is killed by its process group
 * if it outlives its own timeout by a margin.
 */
import { spawn } from "node:child_process";
import { repoRoot, signalGroup } from "../node/processes.js";

export interface PeerSummary {
  ok: boolean;
  error?: string;
  peerId?: string;
  remotePeer?: string;
  received: string[];
  signalingStates: string[];
  connectionStates: string[];
  rtpPackets: number;
  pair?: { local: string; remote: string; localProtocol: string; pairState: string; localTypes: string[] };
  iceServers?: string[];
  iceServerUpdates: string[];
  /** With --send and a linger: ticks sent during the linger, echoes back, and the last echo's age. */
  ticks?: { sent: number; echoed: number; lastEchoAgoMs: number | null };
  channelOpenAfterMs?: number;
  elapsedMs: number;
}

export interface PeerRun {
  summary: PeerSummary;
  stderr: string;
}

const MARGIN_MS = 10_000;

export function runWeriftPeer(args: string[], timeoutMs: number, netnsExec: string[] = []): Promise<PeerRun> {
  const command = [...netnsExec, process.execPath, "--import", "tsx", "test/e2e/werift-peer.ts", ...args, `--timeout-ms=${timeoutMs}`];
  return new Promise((resolve) => {
    const child = spawn(command[0]!, command.slice(1), { cwd: repoRoot, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const killer = setTimeout(() => child.pid !== undefined && signalGroup(child.pid, "SIGKILL"), timeoutMs + MARGIN_MS);
    child.once("close", (code, signal) => {
      clearTimeout(killer);
      if (child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
      const line = stdout.trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
      let summary: PeerSummary;
      try {
        summary = JSON.parse(line ?? "") as PeerSummary;
      } catch {
        summary = { ok: false, error: `no summary (exit ${code}, signal ${signal}): ${stdout.slice(-500)}`, received: [], signalingStates: [], connectionStates: [], rtpPackets: 0, iceServerUpdates: [], elapsedMs: 0 };
      }
      resolve({ summary, stderr });
    });
  });
}
