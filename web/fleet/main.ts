/**
 * The fleet page (dist/web/fleet.html, at /fleet): asks for an API key, then shows `/v1/fleet` as a
 * table, refreshed every 2 s. The key stays in this tab's session storage and goes out only in the
 * Authorization header, never in a URL.
 */
import type { FleetView } from "../../shared/fleet/view.js";
import type { HttpErrorBody } from "../../shared/signaling/protocol.js";
import { byId, element, messageOf } from "../common/dom.js";
import { refusalsLine, relayRow } from "./rows.js";

const REFRESH_MS = 2_000;
const KEY_STORAGE = "relaykit.fleet.apiKey";

const ui = {
  form: byId("key-form", HTMLFormElement),
  apiKey: byId("api-key", HTMLInputElement),
  status: byId("status", HTMLParagraphElement),
  relays: byId("relays", HTMLTableSectionElement),
  refusals: byId("refusals", HTMLParagraphElement),
};

let timer: ReturnType<typeof setTimeout> | undefined;

function render(view: FleetView): void {
  const now = Date.now();
  const rows = view.relays.map((relay) => element("tr", {}, ...relayRow(relay, now).map((cell, index) => element(index === 0 ? "th" : "td", index === 0 ? { attributes: { scope: "row" } } : {}, cell))));
  ui.relays.replaceChildren(...rows);
  ui.refusals.textContent = refusalsLine(view.refusals);
  ui.status.textContent = view.relays.length === 0 ? "No relay has registered: the Worker hands out TURN_URLS." : `${view.relays.length} relays, updated ${new Date(now).toLocaleTimeString()}`;
}

async function refresh(key: string): Promise<void> {
  try {
    const response = await fetch("/v1/fleet", { headers: { Authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(5_000) });
    if (!response.ok) {
      const body = (await response.json().catch(() => null)) as HttpErrorBody | null;
      ui.status.textContent = `/v1/fleet answered ${response.status}: ${body?.error?.message ?? response.statusText}`;
      // A refused key will not start working by itself: stop polling until another is entered.
      if (response.status === 401 || response.status === 403) return;
    } else {
      render((await response.json()) as FleetView);
    }
  } catch (error) {
    ui.status.textContent = `could not reach /v1/fleet: ${messageOf(error)}`;
  }
  timer = setTimeout(() => void refresh(key), REFRESH_MS);
}

function start(key: string): void {
  if (timer !== undefined) clearTimeout(timer);
  sessionStorage.setItem(KEY_STORAGE, key);
  ui.status.textContent = "Loading…";
  void refresh(key);
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = ui.apiKey.value.trim();
  if (key === "") {
    ui.status.textContent = "Enter one of the Worker's API_KEYS.";
    return;
  }
  start(key);
});

const saved = sessionStorage.getItem(KEY_STORAGE);
if (saved !== null) start(saved);
