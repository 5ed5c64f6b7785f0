/**
 * The wrangler configuration the suites run `wrangler dev` with: wrangler.toml without its `[build]`
 * section, paths made absolute, written once per test run (vitest.config.ts) next to the relay bundle.
 *
 * Why: `[build]` watches web/ and shared/client/, and wrangler runs the build once more when that
 * watcher is ready. On a loaded machine that second build can finish after the server has started,
 * and wrangler then reloads the Worker, which drops every WebSocket open on it (close code 1006): a
 * NAT-lab call whose peers had just joined never came up in CI. The suites build the pages once
 * before any file runs (vitest.config.ts), so they lose nothing by not watching. The benches that run
 * the Worker use it too: a reload in the middle of a measurement would drop its connections.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Reads wrangler.toml from `root` and returns it without `[build]`, with `main` and the assets directory absolute. */
export function unwatchedWranglerConfig(root: string): string {
  const lines = readFileSync(join(root, "wrangler.toml"), "utf8").split("\n");
  const kept: string[] = [];
  let section = "";
  for (const line of lines) {
    const header = /^\s*\[\[?([^\]]+)\]\]?\s*$/.exec(line);
    if (header !== null) section = header[1]!.trim();
    if (section === "build") continue;
    kept.push(line);
  }
  let text = kept.join("\n");
  const replaceOnce = (pattern: RegExp, replacement: (value: string) => string, what: string) => {
    if (!pattern.test(text)) throw new Error(`wrangler.toml has no ${what}: update test/node/wrangler-config.ts to its new shape`);
    text = text.replace(pattern, (_match, key: string, value: string) => `${key}${JSON.stringify(replacement(value))}`);
  };
  replaceOnce(/^(main\s*=\s*)"([^"]+)"/m, (value) => join(root, value), '`main = "..."`');
  replaceOnce(/^(directory\s*=\s*)"([^"]+)"/m, (value) => join(root, value), '`directory = "..."` under [assets]');
  return text;
}

/** Writes the unwatched configuration into `dir` and returns its path. */
export function writeUnwatchedWranglerConfig(root: string, dir: string): string {
  const path = join(dir, "wrangler.toml");
  writeFileSync(path, unwatchedWranglerConfig(root));
  return path;
}

let writtenHere: string | undefined;

/**
 * The configuration file for a `wrangler dev` that must not reload while it is tested or measured:
 * the one vitest.config.ts wrote for this run (RELAYKIT_TEST_WRANGLER_CONFIG), or, outside vitest (a
 * bench or a lab script run by hand), one written on first use into a directory removed at exit,
 * after building the pages it serves.
 */
export function unwatchedWranglerConfigPath(): string {
  const fromRun = process.env["RELAYKIT_TEST_WRANGLER_CONFIG"];
  if (fromRun !== undefined && fromRun !== "") return fromRun;
  if (writtenHere === undefined) {
    const root = fileURLToPath(new URL("../..", import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), "relaykit-wrangler-"));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    execFileSync(process.execPath, [join(root, "scripts", "build-web.mjs"), "--quiet"], { stdio: "inherit" });
    writtenHere = writeUnwatchedWranglerConfig(root, dir);
  }
  return writtenHere;
}

/** `--config <file>` for `wrangler dev`: unwatchedWranglerConfigPath(). */
export function unwatchedWranglerConfigArgs(): string[] {
  return ["--config", unwatchedWranglerConfigPath()];
}
