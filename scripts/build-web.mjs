#!/usr/bin/env node
// Builds the pages the Worker serves as static assets (wrangler.toml [assets]) into dist/web/:
//   index.html        the demo room app: the lobby at /, a room at /r/:room (the Worker serves it there)
//   ice-test.html     the ICE test page, at /ice-test
//   fleet.html        the fleet's operator view, at /fleet
//   assets/room.js, assets/ice-test.js, assets/fleet.js (+ .map), assets/style.css
// `wrangler dev` and `wrangler deploy` run this first ([build] in wrangler.toml).
//
// Options: --outdir DIR (default dist/web), --quiet.
//
// Several `wrangler dev` processes may build at once (the end-to-end tests start one each) while
// others already serve the directory, so every file is written to a temporary name and renamed
// into place: a reader sees the old file or the new one, never half of one.
import { build } from "esbuild";
import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({ options: { outdir: { type: "string", default: join(root, "dist", "web") }, quiet: { type: "boolean", default: false } } });
const outDir = resolve(values.outdir);

/** Bundles: the key is the output path under outDir, without `.js`. */
const bundles = {
  "assets/room": join(root, "web/room/main.ts"),
  "assets/ice-test": join(root, "web/ice-test/main.ts"),
  "assets/fleet": join(root, "web/fleet/main.ts"),
};
/** Files copied as they are: output path → source. */
const copies = {
  "index.html": join(root, "web/room/index.html"),
  "ice-test.html": join(root, "web/ice-test/index.html"),
  "fleet.html": join(root, "web/fleet/index.html"),
  "assets/style.css": join(root, "web/style.css"),
};

/**
 * Writes `contents` to `path` unless the file already holds exactly them. Every running `wrangler dev`
 * watches dist/web and reloads on any change, dropping requests in flight; a build that rewrites
 * identical files (each `wrangler dev` that starts runs one) would reload every other one for nothing.
 */
async function writeAtomically(path, contents) {
  const current = await readFile(path).catch(() => null);
  if (current !== null && Buffer.compare(current, Buffer.from(contents)) === 0) return;
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, contents);
  await rename(temporary, path);
}

async function listFiles(dir) {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath ?? entry.path, entry.name));
}

const started = performance.now();
let result;
try {
  result = await build({
    entryPoints: Object.entries(bundles).map(([out, source]) => ({ in: source, out })),
    outdir: outDir,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    sourcemap: true,
    write: false,
    logLevel: "silent",
    legalComments: "none",
  });
} catch (error) {
  const messages = error?.errors?.map((e) => `${e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ` : ""}${e.text}`) ?? [String(error)];
  console.error(`build-web: esbuild failed; fix these and run \`node scripts/build-web.mjs\` again:\n${messages.join("\n")}`);
  process.exit(1);
}

const written = new Set();
for (const file of result.outputFiles) {
  await writeAtomically(file.path, file.contents);
  written.add(file.path);
}
for (const [out, source] of Object.entries(copies)) {
  const target = join(outDir, out);
  let contents;
  try {
    contents = await readFile(source);
  } catch (error) {
    console.error(`build-web: cannot read ${relative(root, source)} (${error.code ?? error}); it is one of the page sources this script copies`);
    process.exit(1);
  }
  await writeAtomically(target, contents);
  written.add(target);
}
// Files of an older build that this one no longer makes would otherwise be served forever.
// Other builds' temporary files are left alone: they are about to be renamed.
for (const path of await listFiles(outDir)) {
  if (!written.has(path) && !path.endsWith(".tmp")) await rm(path, { force: true });
}

if (!values.quiet) {
  const ms = Math.round(performance.now() - started);
  console.log(`build-web: ${written.size} files in ${relative(process.cwd(), outDir) || "."} (${ms} ms)`);
}
