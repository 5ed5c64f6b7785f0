/**
 * The container's HEALTHCHECK: GET /livez on the relay's metrics and health listener, exit 0 when
 * it answers 200 within the bound, 1 otherwise. It reads the same variables the relay does
 * (RELAY_PROMETHEUS_ADDRESS, RELAY_PROMETHEUS_PORT), so move the listener with those, not with flags.
 * A wildcard address is reached on loopback.
 */
import { get } from "node:http";
import { RELAY_DEFAULTS } from "./config.js";

const TIMEOUT_MS = 3_000;

function target(env: Readonly<Record<string, string | undefined>>): { host: string; port: number } {
  const address = env.RELAY_PROMETHEUS_ADDRESS?.trim() || RELAY_DEFAULTS.prometheusAddress;
  const host = address === "0.0.0.0" ? "127.0.0.1" : address === "::" ? "::1" : address;
  const port = Number(env.RELAY_PROMETHEUS_PORT?.trim() || RELAY_DEFAULTS.prometheusPort);
  return { host, port };
}

const { host, port } = target(process.env);
const request = get({ host, port, path: "/livez", timeout: TIMEOUT_MS }, (response) => {
  response.resume();
  process.exit(response.statusCode === 200 ? 0 : 1);
});
request.on("timeout", () => {
  process.stderr.write(`healthcheck: no answer from http://${host}:${port}/livez within ${TIMEOUT_MS} ms\n`);
  process.exit(1);
});
request.on("error", (error) => {
  process.stderr.write(`healthcheck: http://${host}:${port}/livez: ${error.message} (is RELAY_PROMETHEUS on?)\n`);
  process.exit(1);
});
