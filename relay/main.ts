/**
 * `node relay/main.ts` (through tsx or the built image): parse the coturn-style flags, start the
 * relay, log one JSON line per event, and stop cleanly on SIGINT/SIGTERM.
 */
import { RELAY_USAGE, RelayConfigError, parseRelayArgs } from "./config.js";
import { RelayServer } from "./server/relay-server.js";

function log(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseRelayArgs(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof RelayConfigError) {
      process.stderr.write(`relay: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  if (parsed.help) {
    process.stdout.write(`${RELAY_USAGE}\n`);
    return;
  }
  const server = new RelayServer(parsed.config, (event) => log({ level: "info", ...event }));
  let listeners;
  try {
    listeners = await server.start();
  } catch (error) {
    // A port in use or an address this host does not have: say which, without a stack trace.
    const { code, address, port } = error as NodeJS.ErrnoException & { address?: string; port?: number };
    process.stderr.write(`relay: cannot listen on ${address ?? "?"}:${port ?? "?"} (${code ?? String(error)}); check --listening-ip and the ports\n`);
    await server.stop();
    process.exit(1);
  }
  log({ level: "info", event: "listening", listeners, relayPorts: `${parsed.config.minPort}-${parsed.config.maxPort}`, realm: parsed.config.realm });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    log({ level: "info", event: "stopping", signal });
    void server.stop().then(() => process.exit(0));
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

void main();
