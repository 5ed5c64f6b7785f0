/**
 * `npm start` refuses options it cannot honour, before it starts anything: exit code 2 and one line
 * that names the option and says what it wants.
 */
import { describe, expect, it } from "vitest";
import { run } from "./processes.js";

const START = "scripts/start-local.mjs";

describe("npm start with a bad option", () => {
  it.each([
    [["--port", "80a"], /^npm start: --port must be a port number \(1-65535\), not "80a"\n$/],
    [["--relay-port", "70000"], /^npm start: --relay-port must be a port number \(1-65535\), not "70000"\n$/],
    [["--relays", "9"], /^npm start: --relays must be 1 to 4, not "9"\n$/],
    [["--wrangler-config", "/nonexistent/wrangler.toml"], /^npm start: --wrangler-config "\/nonexistent\/wrangler.toml": no such file \(leave it out to run wrangler.toml\)\n$/],
  ])("%j: exit 2 and says why, starting nothing", async (args, message) => {
    const result = await run(process.execPath, [START, ...args], 10_000);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe("");
  });
});
