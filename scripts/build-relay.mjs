#!/usr/bin/env node
// Builds the relay as the container image runs it (relay/Dockerfile's build stage runs exactly this):
//   OUTDIR/relay.mjs        relay/main.ts and every dependency (pino, prom-client) in one ES module
//   OUTDIR/healthcheck.mjs  relay/healthcheck.ts, the image's HEALTHCHECK
//   OUTDIR/package.json     {"type": "module"} and the version: nothing to install
//   OUTDIR/native/build/udp-batch.node  the batched UDP addon, when it is built (npm run build:native);
//                           without it the bundle runs on Node's dgram
// No node_modules are needed next to it: `node OUTDIR/relay.mjs --help` runs anywhere Node runs.
//
// Usage: node scripts/build-relay.mjs [OUTDIR] [--target=nodeNN]   (default dist/relay, node24)
// --target is for the test suites, which run the same bundle on the Node they run on
// (vitest.config.ts); the image's bundle is built for its own Node.
import { build } from "esbuild";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const targetFlag = process.argv.slice(2).find((arg) => arg.startsWith("--target="));
const outArg = process.argv.slice(2).find((arg) => !arg.startsWith("--"));
const outDir = resolve(outArg ?? join(root, "dist", "relay"));
const pkg = JSON.parse(await readFile(join(root, "package.json"), "utf8"));
/** The Node version the image runs; the bundle may use what it has. */
const IMAGE_TARGET = "node24";
const TARGET = targetFlag === undefined ? IMAGE_TARGET : targetFlag.slice("--target=".length);
if (!/^node\d+$/.test(TARGET)) {
  console.error(`build-relay: --target must be nodeNN (e.g. --target=node20), not ${JSON.stringify(TARGET)}`);
  process.exit(2);
}

await rm(outDir, { recursive: true, force: true });
await mkdir(outDir, { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: { relay: "relay/main.ts", healthcheck: "relay/healthcheck.ts" },
  outdir: outDir,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: TARGET,
  // pino and prom-client are CommonJS and require() Node's own modules; an ES module has no require.
  banner: { js: 'import { createRequire as __relayCreateRequire } from "node:module"; const require = __relayCreateRequire(import.meta.url);' },
  legalComments: "eof",
  logLevel: "warning",
});
await writeFile(
  join(outDir, "package.json"),
  `${JSON.stringify({ name: "relaykit-relay", version: pkg.version, private: true, type: "module", license: pkg.license }, null, 2)}\n`,
);
// relay/transport/native-udp.ts looks for the addon at ./native/build/ beside itself; in the bundle
// "itself" is relay.mjs.
const addon = join(root, "relay/transport/native/build/udp-batch.node");
if (existsSync(addon)) {
  await mkdir(join(outDir, "native", "build"), { recursive: true });
  await copyFile(addon, join(outDir, "native", "build", "udp-batch.node"));
} else {
  console.warn("build-relay: relay/transport/native/build/udp-batch.node is not built (npm run build:native); the bundle will use dgram");
}
