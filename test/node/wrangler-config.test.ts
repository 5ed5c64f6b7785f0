/**
 * The wrangler configuration the suites run `wrangler dev` with (test/node/wrangler-config.ts) is
 * wrangler.toml less its [build] watcher: the same Worker, bindings, migrations and variables, with
 * paths that hold from any directory.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot, run } from "./processes.js";
import { unwatchedWranglerConfig, unwatchedWranglerConfigArgs } from "./wrangler-config.js";

const sectionsOf = (toml: string) => toml.split("\n").filter((line) => /^\s*\[/.test(line)).map((line) => line.trim());
const settingsOf = (toml: string) => toml.split("\n").filter((line) => /^\s*[A-Za-z_]+\s*=/.test(line)).map((line) => line.trim());

describe("the suites' wrangler configuration", () => {
  const original = readFileSync(join(repoRoot, "wrangler.toml"), "utf8");
  const derived = unwatchedWranglerConfig(repoRoot);
  const scratch = mkdtempSync(join(tmpdir(), "relaykit-wrangler-config-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it("has every section of wrangler.toml but [build]", () => {
    expect(sectionsOf(original)).toContain("[build]");
    expect(sectionsOf(derived)).toEqual(sectionsOf(original).filter((section) => section !== "[build]"));
    expect(derived).not.toMatch(/watch_dir|build-web/);
  });

  it("points at the same Worker and pages by absolute paths, and changes no other setting", () => {
    const main = /^main\s*=\s*"([^"]+)"/m.exec(derived)?.[1];
    const assets = /^directory\s*=\s*"([^"]+)"/m.exec(derived)?.[1];
    expect(main !== undefined && isAbsolute(main) && existsSync(main), main).toBe(true);
    expect(main).toBe(join(repoRoot, "worker/index.ts"));
    expect(assets).toBe(join(repoRoot, "dist/web"));
    const unchanged = (settings: string[]) => settings.filter((line) => !/^(main|directory|command|watch_dir)\s*=/.test(line));
    expect(unchanged(settingsOf(derived))).toEqual(unchanged(settingsOf(original)));
  });

  it("says which file to update when wrangler.toml changes shape", () => {
    writeFileSync(join(scratch, "wrangler.toml"), 'name = "x"\n[assets]\ndirectory = "./dist/web"\n');
    expect(() => unwatchedWranglerConfig(scratch)).toThrow(/wrangler\.toml has no `main = "\.\.\."`: update test\/node\/wrangler-config\.ts/);
  });

  it("is the file this run wrote, under vitest", () => {
    const [flag, path] = unwatchedWranglerConfigArgs();
    expect(flag).toBe("--config");
    expect(path).toBe(process.env["RELAYKIT_TEST_WRANGLER_CONFIG"]);
    expect(readFileSync(path!, "utf8")).toBe(derived);
  });

  it("is written on first use outside vitest (a bench run by hand), reused, and removed when the process exits", async () => {
    const script = [
      'import { existsSync, readFileSync } from "node:fs";',
      'import { unwatchedWranglerConfigArgs } from "./test/node/wrangler-config.ts";',
      "const [, first] = unwatchedWranglerConfigArgs();",
      "const [, again] = unwatchedWranglerConfigArgs();",
      'console.log(JSON.stringify({ first, again, exists: existsSync(first), build: readFileSync(first, "utf8").includes("[build]") }));',
    ].join("\n");
    const env = { ...process.env, RELAYKIT_TEST_WRANGLER_CONFIG: "" };
    const result = await run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], 30_000, { cwd: repoRoot, env });
    expect(result.code, result.stderr).toBe(0);
    const seen = JSON.parse(result.stdout.trim().split("\n").at(-1)!) as { first: string; again: string; exists: boolean; build: boolean };
    expect(seen.first).toMatch(/relaykit-wrangler-[^/]+\/wrangler\.toml$/);
    expect(seen.again).toBe(seen.first);
    expect(seen.exists).toBe(true);
    expect(seen.build).toBe(false);
    expect(existsSync(seen.first)).toBe(false);
  });
});
