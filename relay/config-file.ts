/**
 * The relay's config file, in coturn's turnserver.conf format so that an operator's file carries
 * over line by line:
 *
 *   # a comment (only at the start of a line: a secret may contain '#')
 *   listening-port=3478
 *   external-ip=203.0.113.10/10.0.0.5
 *   allow-loopback-peers          a bare name turns a switch on (name=true|false|1|0 also works)
 *   listening-ip=10.0.0.5         options marked * in --help are repeated on several lines
 *   listening-ip=fd00::5
 *
 * A leading `--` is tolerated (`--min-port=50000`), and so is space around `=`. Parsing is pure:
 * `parseConfigText` gets the text; `readConfigFile` is the one function here that touches the disk.
 */
import { readFileSync, statSync } from "node:fs";

/** How an option takes its value, as config.ts's option table says. */
export type OptionKind = "value" | "list" | "switch";

export interface ConfigFileEntry {
  /** Every value given, in file order (a switch's bare name reads as "true"). */
  readonly values: readonly string[];
  /** Where, for error messages: `min-port in /etc/relay.conf line 4`. */
  readonly from: string;
}

/** Option name → what the file says about it. */
export type ConfigFileOptions = ReadonlyMap<string, ConfigFileEntry>;

export class ConfigFileError extends Error {
  override name = "ConfigFileError";
}

/** Options that make no sense inside a config file. */
const NOT_IN_FILE = new Set(["config", "help"]);

export function parseConfigText(text: string, path: string, kinds: ReadonlyMap<string, OptionKind>): ConfigFileOptions {
  const found = new Map<string, { values: string[]; lines: number[] }>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const lineNumber = index + 1;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const where = `${path} line ${lineNumber}`;
    const equals = line.indexOf("=");
    const name = (equals === -1 ? line : line.slice(0, equals)).trim().replace(/^--/, "");
    // The name is quoted only if it looks like an option name: a line that is a bare secret is not echoed.
    const shown = /^[a-z][a-z0-9-]{0,40}$/.test(name) ? JSON.stringify(name) : "(not shown)";
    if (NOT_IN_FILE.has(name)) throw new ConfigFileError(`${where}: ${name} cannot be set in a config file; give it on the command line`);
    const kind = kinds.get(name);
    if (kind === undefined) throw new ConfigFileError(`${where}: unknown option ${shown}; write name=value with an option from --help`);
    let value: string;
    if (equals === -1) {
      if (kind !== "switch") throw new ConfigFileError(`${where}: ${name} needs a value; write ${name}=VALUE`);
      value = "true";
    } else {
      value = line.slice(equals + 1).trim();
    }
    const entry = found.get(name) ?? { values: [], lines: [] };
    if (kind !== "list" && entry.lines.length > 0) {
      throw new ConfigFileError(`${where}: ${name} is given again (first on line ${entry.lines[0]}); it takes one value`);
    }
    entry.values.push(value);
    entry.lines.push(lineNumber);
    found.set(name, entry);
  });
  return new Map(
    [...found].map(([name, entry]) => {
      const lines = entry.lines.length === 1 ? `line ${entry.lines[0]}` : `lines ${entry.lines.join(", ")}`;
      return [name, { values: entry.values, from: `${name} in ${path} ${lines}` }];
    }),
  );
}

/** Reads and parses the file; `from` names the option that gave the path (`--config` or `RELAY_CONFIG`). */
export function readConfigFile(path: string, from: string, kinds: ReadonlyMap<string, OptionKind>): ConfigFileOptions {
  let text: string;
  try {
    if (!statSync(path).isFile()) throw new ConfigFileError(`${from} ${JSON.stringify(path)} is not a file; it must be a readable config file`);
    text = readFileSync(path, "utf8");
  } catch (error) {
    if (error instanceof ConfigFileError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "there is no such file" : code === "EACCES" || code === "EPERM" ? "permission denied" : (code ?? String(error));
    throw new ConfigFileError(`${from} ${JSON.stringify(path)} cannot be read (${reason}); it must be a readable config file`);
  }
  return parseConfigText(text, path, kinds);
}
