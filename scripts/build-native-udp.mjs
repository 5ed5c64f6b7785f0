#!/usr/bin/env node
// Builds the relay's native I/O addon (relay/transport/native: batched UDP, TCP streams) with the C compiler and
// the headers of the Node that runs this script; no node-gyp, no Python, no download.
//
//   node scripts/build-native-udp.mjs [OUT]        fails with a reason when it cannot build
//   node scripts/build-native-udp.mjs --if-possible  (npm's postinstall) says why not, exits 0
//
// OUT defaults to relay/transport/native/build/udp-batch.node, where the relay looks for it
// (relay/transport/native-udp.ts). The addon uses Node-API 8 only, so one build runs on every Node
// from 16 on (the tests load the Node 20 build in Node 24 too). Without it the relay runs on dgram.
// CC picks the compiler (default cc); NODE_HEADERS_DIR the directory holding node_api.h and uv.h.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const ifPossible = args.includes("--if-possible");
const out = resolve(args.find((arg) => !arg.startsWith("--")) ?? join(root, "relay/transport/native/build/udp-batch.node"));
const sources = ["udp-batch.c", "stream-io.c", "channel-routes.c"].map((file) => join(root, "relay/transport/native", file));

function giveUp(reason) {
  if (ifPossible) {
    console.warn(`build-native-udp: not built (${reason}); the relay will use Node's dgram, which costs it about 1.4 x the CPU`);
    process.exit(0);
  }
  console.error(`build-native-udp: ${reason}`);
  process.exit(1);
}

if (process.platform !== "linux") giveUp(`the addon uses recvmmsg, which is Linux's; this is ${process.platform}`);
// Node's own headers: beside the binary in every official build and Debian's (include/node).
const headerCandidates = [process.env.NODE_HEADERS_DIR, join(dirname(process.execPath), "..", "include", "node")].filter(Boolean);
const headers = headerCandidates.find((dir) => existsSync(join(dir, "node_api.h")) && existsSync(join(dir, "uv.h")));
if (headers === undefined) giveUp(`no node_api.h and uv.h in ${headerCandidates.join(" or ")}; set NODE_HEADERS_DIR to Node's include/node directory`);
const compiler = process.env.CC ?? "cc";
try {
  execFileSync(compiler, ["--version"], { stdio: "ignore" });
} catch {
  giveUp(`no C compiler (${compiler}); install one (Debian: apt-get install gcc libc6-dev) or set CC`);
}
mkdirSync(dirname(out), { recursive: true });
try {
  execFileSync(compiler, ["-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-I", headers, ...sources, "-o", out], { stdio: "inherit" });
} catch {
  giveUp(`${compiler} failed on ${sources.join(" and ")} (its messages are above)`);
}
console.log(`build-native-udp: built ${out}`);
