/**
 * docs/api.md is hand-written; this keeps it in step with the packages. Each package's section
 * (`## @relaykit/<name>`) has one `### \`Name\`` heading per export of the package's entry
 * (packages/<name>/src/index.ts, types included), and the relay's section one per command of its
 * package.json `bin`. An export added without a heading, or a heading left after its export went,
 * fails with the names to add or remove.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compilerOptionsOf, publicExports } from "./public-exports.js";
import { repoRoot } from "../node/processes.js";

const API_DOC = join(repoRoot, "docs", "api.md");
const LIBRARIES = ["client", "server"] as const;

/** The `### \`name\`` headings of each `## @relaykit/<package>` section. */
export function documentedNames(markdown: string): Map<string, string[]> {
  const sections = new Map<string, string[]>();
  let current: string[] | null = null;
  let inCode = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) inCode = !inCode;
    if (inCode) continue;
    const section = /^## @relaykit\/([a-z-]+)\s*$/.exec(line);
    if (section !== null) {
      current = [];
      sections.set(section[1]!, current);
      continue;
    }
    if (line.startsWith("## ")) current = null;
    const heading = /^### `([\w$-]+)`\s*$/.exec(line);
    if (heading !== null && current !== null) current.push(heading[1]!);
  }
  return sections;
}

function difference(expected: readonly string[], documented: readonly string[]): { missing: string[]; extra: string[] } {
  return { missing: expected.filter((name) => !documented.includes(name)), extra: documented.filter((name) => !expected.includes(name)) };
}

describe("docs/api.md documents exactly the packages' public surface", () => {
  const documented = documentedNames(readFileSync(API_DOC, "utf8"));
  const options = compilerOptionsOf(join(repoRoot, "tsconfig.packages.json"));

  it("has a section for each package", () => {
    expect([...documented.keys()].sort()).toEqual(["client", "relay", "server"]);
  });

  for (const name of LIBRARIES) {
    it(`@relaykit/${name}: one heading per export, no heading without an export`, async () => {
      const entry = join(repoRoot, "packages", name, "src", "index.ts");
      const surface = publicExports(entry, options);
      // What the compiler calls a value is what the entry really exports at run time.
      const runtime = Object.keys((await import(entry)) as Record<string, unknown>).sort((a, b) => a.localeCompare(b));
      expect(runtime).toEqual(surface.filter((item) => item.kind === "value").map((item) => item.name));
      const exported = surface.map((item) => item.name);
      expect(exported.length).toBeGreaterThan(10);
      const names = documented.get(name) ?? [];
      expect(new Set(names).size, `docs/api.md documents a name twice in @relaykit/${name}`).toBe(names.length);
      // Named lists, so a failure says what to write or delete.
      expect(difference(exported, names), `docs/api.md against packages/${name}/src/index.ts`).toEqual({ missing: [], extra: [] });
    });
  }

  it("@relaykit/relay: one heading per command in its bin", () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, "packages", "relay", "package.json"), "utf8")) as { bin: Record<string, string> };
    expect(difference(Object.keys(pkg.bin), documented.get("relay") ?? []), "docs/api.md against packages/relay/package.json bin").toEqual({ missing: [], extra: [] });
  });
});
