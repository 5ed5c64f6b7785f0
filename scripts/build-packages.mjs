#!/usr/bin/env node
// Builds the three published packages from the code where it lives (packages/*/src/index.ts only
// re-export shared/; the relay is relay/main.ts), into packages/<name>/dist/ (gitignored):
//
//   @relaykit/client  dist/index.js (+ .map)   ESM bundle for browsers and Node, no dependencies
//                     dist/index.d.ts          the types: a tree under dist/types/, as tsc emits it
//                     dist/src/                the sources the source maps and declaration maps point at
//                     dist/size.json           the bundle's size minified and gzipped (the README quotes it)
//   @relaykit/server  the same layout; Web Crypto only, so it runs on Node, Workers, Deno and Bun
//   @relaykit/relay   dist/relay.mjs (+ .map)  the relay CLI (bin relaykit-relay), pino and prom-client inlined;
//                                            its map carries the sources' text (labelled relaykit:///<path>)
//                     dist/scripts/build-native-udp.mjs and dist/relay/transport/native/*.c, *.h:
//                     the package's install step builds the native I/O addon with them when a C
//                     compiler is there; without it the relay runs on Node's dgram and net
//
// It fails (exit 1, saying why) when the declarations do not type-check, when a .d.ts or a map points
// outside its package or at a module the package does not ship, when a library bundle would need a
// Node built-in, or when the browser client is larger than the size limit minified and gzipped.
//
// Usage: node scripts/build-packages.mjs [--size-limit BYTES] [--quiet]
//   --size-limit  the client's limit in gzipped bytes (default 15360, 15 KB: issue 18's budget); the
//                 tests pass a smaller one to see the build refuse
import { build } from "esbuild";
import ts from "typescript";
import { chmod, copyFile, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({ options: { "size-limit": { type: "string", default: "15360" }, quiet: { type: "boolean", default: false } } });
const sizeLimit = Number(values["size-limit"]);
if (!Number.isInteger(sizeLimit) || sizeLimit <= 0) fail(`--size-limit must be a positive whole number of bytes, not ${JSON.stringify(values["size-limit"])}`);
const log = values.quiet ? () => {} : (line) => console.log(line);

/** The libraries: an entry that re-exports shared/, bundled for any JavaScript runtime. */
const LIBRARIES = ["client", "server"];
/** Browsers and runtimes from 2022 on (Workers, Deno, Bun, Node 20) all run ES2022. */
const LIBRARY_TARGET = "es2022";
/** The relay package's oldest Node (its engines field). */
const RELAY_TARGET = "node20";

function fail(message) {
  console.error(`build-packages: ${message}`);
  process.exit(1);
}

const packageDir = (name) => join(root, "packages", name);
const isInside = (dir, file) => {
  const rel = relative(dir, file);
  return rel !== "" && !rel.startsWith("..") && !rel.startsWith(sep) && !/^[a-zA-Z]:/.test(rel);
};

async function filesUnder(dir, suffix) {
  const found = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith(suffix)) found.push(join(entry.parentPath ?? entry.path, entry.name));
  }
  return found;
}

// ------------------------------------------------------------------------------------------------
// Declarations: tsc, with the compiler options of tsconfig.packages.json (which `npm run typecheck`
// also checks), one program per package so each package's tree holds only what its entry reaches.

function readPackagesConfig() {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(root, "tsconfig.packages.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => fail(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")),
  });
  if (parsed === undefined) fail("tsconfig.packages.json could not be read");
  return parsed.options;
}

function emitDeclarations(name, baseOptions) {
  const dir = packageDir(name);
  const options = {
    ...baseOptions,
    noEmit: false,
    declaration: true,
    emitDeclarationOnly: true,
    declarationMap: true,
    // The repository's root, so the tree mirrors it (types/packages/<name>/src, types/shared/...) and
    // every relative import between declarations stays what it is in the source.
    rootDir: root,
    outDir: join(dir, "dist", "types"),
  };
  const program = ts.createProgram([join(dir, "src", "index.ts")], options);
  const result = program.emit();
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics];
  if (diagnostics.length > 0) {
    const text = ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => "\n" });
    fail(`the declarations of @relaykit/${name} do not compile:\n${text}`);
  }
  // The TypeScript files of ours that the declarations come from (not the libraries' .d.ts).
  return program
    .getSourceFiles()
    .filter((file) => !file.isDeclarationFile && !file.fileName.includes("/node_modules/"))
    .map((file) => resolve(file.fileName));
}

// ------------------------------------------------------------------------------------------------
// Maps: every source a map names is shipped in dist/src/ at its path in the repository, and the map
// points there, so a debugger or an editor's "go to definition" finds it inside the package.

async function shipMapSources(dir, mapFile) {
  const map = JSON.parse(await readFile(mapFile, "utf8"));
  const mapDir = dirname(mapFile);
  map.sources = await Promise.all(
    map.sources.map(async (source) => {
      const original = resolve(mapDir, map.sourceRoot ?? "", source);
      const fromRoot = relative(root, original);
      if (fromRoot.startsWith("..") || !existsSync(original)) fail(`${relative(root, mapFile)} names ${source}, which is not a file of the repository`);
      const shipped = join(dir, "dist", "src", fromRoot);
      await mkdir(dirname(shipped), { recursive: true });
      await copyFile(original, shipped);
      return relative(mapDir, shipped).split(sep).join("/");
    }),
  );
  delete map.sourceRoot;
  await writeFile(mapFile, JSON.stringify(map));
}

/**
 * A map that carries its sources' text: each source becomes a `relaykit:///<path in the repository>`
 * label (as bundlers' `webpack://` ones), so nothing in it points at a file outside the package.
 */
async function labelEmbeddedSources(mapFile) {
  const map = JSON.parse(await readFile(mapFile, "utf8"));
  const mapDir = dirname(mapFile);
  map.sources = map.sources.map((source, index) => {
    if (typeof map.sourcesContent?.[index] !== "string") fail(`${relative(root, mapFile)} has no text for ${source}`);
    return `${EMBEDDED_SOURCE_SCHEME}///${relative(root, resolve(mapDir, map.sourceRoot ?? "", source)).split(sep).join("/")}`;
  });
  delete map.sourceRoot;
  await writeFile(mapFile, JSON.stringify(map));
}

// ------------------------------------------------------------------------------------------------
// Checks on what a package ships: every import of a .d.ts resolves to a .d.ts of the package, and
// every map's sources lie inside the package.

const EMBEDDED_SOURCE_SCHEME = "relaykit:";
const IMPORT_SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"']+)["']/g;

async function checkDeclarations(dir) {
  const problems = [];
  for (const file of await filesUnder(join(dir, "dist"), ".d.ts")) {
    const text = await readFile(file, "utf8");
    for (const match of text.matchAll(IMPORT_SPECIFIER)) {
      const specifier = match[1];
      if (!specifier.startsWith(".")) {
        problems.push(`${relative(dir, file)} imports "${specifier}", which the package does not depend on`);
        continue;
      }
      const target = resolve(dirname(file), specifier.replace(/\.js$/, ".d.ts"));
      if (!isInside(dir, target) || !existsSync(target)) problems.push(`${relative(dir, file)} imports "${specifier}", which is not in the package`);
    }
  }
  for (const mapFile of await filesUnder(join(dir, "dist"), ".map")) {
    const map = JSON.parse(await readFile(mapFile, "utf8"));
    for (const [index, source] of map.sources.entries()) {
      if (source.startsWith(EMBEDDED_SOURCE_SCHEME) && typeof map.sourcesContent?.[index] === "string") continue;
      const target = resolve(dirname(mapFile), source);
      if (!isInside(dir, target) || !existsSync(target)) problems.push(`${relative(dir, mapFile)} names source ${source}, which is not in the package`);
    }
  }
  if (problems.length > 0) fail(`packages/${relative(join(root, "packages"), dir)} would ship broken references:\n  ${problems.join("\n  ")}`);
}

// ------------------------------------------------------------------------------------------------

async function buildLibrary(name, tsOptions) {
  const dir = packageDir(name);
  await rm(join(dir, "dist"), { recursive: true, force: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: { index: join(dir, "src", "index.ts") },
    outdir: join(dir, "dist"),
    bundle: true,
    format: "esm",
    // Neutral: no Node built-in resolves, so a bundle that would need one fails here, not in a browser or a Worker.
    platform: "neutral",
    mainFields: ["module", "main"],
    target: LIBRARY_TARGET,
    sourcemap: true,
    // The sources ship in dist/src (shipMapSources), so the maps need not carry a second copy.
    sourcesContent: false,
    legalComments: "eof",
    logLevel: "warning",
  });
  if (result.errors.length > 0) fail(`@relaykit/${name} did not bundle`);

  const sources = emitDeclarations(name, tsOptions);
  // The entry's types beside its code, the usual place; the tree below keeps the repository's layout.
  await writeFile(join(dir, "dist", "index.d.ts"), `export * from "./types/packages/${name}/src/index.js";\n`);
  for (const mapFile of [join(dir, "dist", "index.js.map"), ...(await filesUnder(join(dir, "dist", "types"), ".d.ts.map"))]) {
    await shipMapSources(dir, mapFile);
  }
  await checkDeclarations(dir);
  log(`build-packages: @relaykit/${name} -> packages/${name}/dist (types from ${sources.length} source files)`);
}

/**
 * The browser client as an app's bundler would ship it: every export kept, minified, gzipped (zlib,
 * level 9), measured before anything is written, so a build over the limit leaves dist/ as it was.
 * Returns the report for dist/size.json, with what each source file adds.
 */
async function measureClient() {
  const dir = packageDir("client");
  const result = await build({
    absWorkingDir: root,
    entryPoints: [join(dir, "src", "index.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: LIBRARY_TARGET,
    minify: true,
    write: false,
    metafile: true,
    outfile: join(dir, "dist", "size-probe.js"),
    logLevel: "warning",
  });
  const [output] = Object.values(result.metafile.outputs);
  const minified = result.outputFiles.find((file) => file.path.endsWith(".js")).contents;
  const gzipBytes = gzipSync(minified, { level: 9 }).length;
  const inputs = Object.fromEntries(
    Object.entries(output.inputs)
      .map(([path, info]) => [path, info.bytesInOutput])
      .sort((a, b) => b[1] - a[1]),
  );
  const line = `@relaykit/client: ${output.bytes} bytes minified, ${gzipBytes} bytes (${(gzipBytes / 1024).toFixed(1)} KB) minified+gzipped; limit ${sizeLimit}`;
  if (gzipBytes > sizeLimit) {
    const biggest = Object.entries(inputs).slice(0, 5).map(([path, bytes]) => `${path} ${bytes} B`).join(", ");
    fail(`${line}: over the limit by ${gzipBytes - sizeLimit} bytes. The largest inputs (minified): ${biggest}. Trim the client or move code out of its entry (packages/client/src/index.ts).`);
  }
  console.log(`build-packages: ${line}`);
  return { package: "@relaykit/client", minifiedBytes: output.bytes, gzipBytes, limitBytes: sizeLimit, gzipLevel: 9, inputs };
}

async function buildRelay() {
  const dir = packageDir("relay");
  const dist = join(dir, "dist");
  await rm(dist, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: { relay: "relay/main.ts" },
    outdir: dist,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: RELAY_TARGET,
    sourcemap: true,
    // Self-contained: some inlined modules' own maps name files their packages do not ship, so the
    // relay's map carries every source's text (labelEmbeddedSources) instead of pointing at files.
    sourcesContent: true,
    // The bin's first line; then a require for pino and prom-client, CommonJS modules that require()
    // Node's own modules (an ES module has none), as scripts/build-relay.mjs does for the container.
    banner: { js: '#!/usr/bin/env node\nimport { createRequire as __relayCreateRequire } from "node:module"; const require = __relayCreateRequire(import.meta.url);' },
    legalComments: "eof",
    logLevel: "warning",
  });
  if (result.errors.length > 0) fail("@relaykit/relay did not bundle");
  await chmod(join(dist, "relay.mjs"), 0o755);
  // The addon's source and the repository's own build script, at the same places relative to each
  // other, so the script (root = its directory's parent) finds the source unchanged. The install step
  // passes the output path: native/build/udp-batch.node beside relay.mjs, where the relay looks.
  await mkdir(join(dist, "scripts"), { recursive: true });
  await copyFile(join(root, "scripts", "build-native-udp.mjs"), join(dist, "scripts", "build-native-udp.mjs"));
  await mkdir(join(dist, "relay", "transport", "native"), { recursive: true });
  for (const file of ["udp-batch.c", "stream-io.c", "channel-routes.c", "channel-routes.h", "native-common.h"]) {
    await copyFile(join(root, "relay", "transport", "native", file), join(dist, "relay", "transport", "native", file));
  }
  await labelEmbeddedSources(join(dist, "relay.mjs.map"));
  await checkDeclarations(dir);
  log("build-packages: @relaykit/relay -> packages/relay/dist");
}

const clientSize = await measureClient();
const tsOptions = readPackagesConfig();
for (const name of LIBRARIES) await buildLibrary(name, tsOptions);
await writeFile(join(packageDir("client"), "dist", "size.json"), `${JSON.stringify(clientSize, null, 2)}\n`);
await buildRelay();
