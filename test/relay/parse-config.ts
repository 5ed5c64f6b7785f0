/**
 * Parsing the relay's options in tests: the config it yields, or the RelayConfigError message it
 * refuses with (failing the test when it does not refuse).
 */
import { expect } from "vitest";
import { RelayConfigError, parseRelayArgs, type RelayConfig } from "../../relay/config.js";

export type Env = Record<string, string | undefined>;

export function config(argv: string[], env: Env = {}): RelayConfig {
  const parsed = parseRelayArgs(argv, env);
  if (parsed.help) throw new Error("unexpected --help");
  return parsed.config;
}

/** The RelayConfigError message `parseRelayArgs` throws (fails the test if it does not throw one). */
export function failure(argv: string[], env: Env = {}): string {
  try {
    parseRelayArgs(argv, env);
  } catch (error) {
    expect(error).toBeInstanceOf(RelayConfigError);
    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(argv)} to be refused`);
}
