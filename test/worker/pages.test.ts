/**
 * The demo pages as the Worker serves them, in real workerd with the built assets (dist/web/, from
 * `node scripts/build-web.mjs`): the lobby, a room, the ICE test page and their bundles; the answer
 * for a bad room name; and the API still being the API next to them.
 *
 * The test pool calls the Worker directly, without the asset router in front, so these go through
 * the Worker's own page routes (worker/routes/pages.ts) and the real ASSETS binding. The router's
 * part (assets first, `run_worker_first` for /v1/* and /r/*) is checked against `npm start` in
 * test/node/pages-build.test.ts.
 */
import { env, exports } from "cloudflare:workers";
import { createExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../worker/index.js";

const ORIGIN = "http://relaykit.test";

function get(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(`${ORIGIN}${path}`, { redirect: "manual", ...init });
}

async function html(path: string): Promise<string> {
  const response = await get(path);
  expect(response.status, path).toBe(200);
  expect(response.headers.get("Content-Type"), path).toMatch(/^text\/html/);
  return response.text();
}

/** Every script and stylesheet a page loads, as absolute paths. */
function subresources(page: string): string[] {
  return [...page.matchAll(/<(?:script[^>]*\ssrc|link[^>]*rel="stylesheet"[^>]*\shref)="([^"]+)"/g)].map((match) => match[1]!);
}

async function errorOf(response: Response) {
  expect(response.headers.get("Content-Type")).toMatch(/^application\/json/);
  return ((await response.json()) as { error: { code: string; message: string } }).error;
}

describe("the demo pages", () => {
  it("serves the lobby at / with the room app's script", async () => {
    const page = await html("/");
    expect(page).toContain('<script type="module" src="/assets/room.js"></script>');
    expect(page).toContain('id="lobby"');
    expect(page).toContain('id="create-room"');
  });

  it.each(["some-room", "A-z_0.9", "x".repeat(64)])("serves the room app at /r/%s", async (room) => {
    const page = await html(`/r/${room}`);
    expect(page).toContain('<script type="module" src="/assets/room.js"></script>');
    expect(page).toContain('id="tiles"');
    expect(page).toContain('id="relay-only"');
  });

  it("keeps the query string working (?relay=1 is read by the page)", async () => {
    const page = await html("/r/some-room?relay=1");
    expect(page).toContain("/assets/room.js");
  });

  it("serves the ICE test page at /ice-test with its own script", async () => {
    const page = await html("/ice-test");
    expect(page).toContain('<script type="module" src="/assets/ice-test.js"></script>');
    expect(page).not.toContain("/assets/room.js");
    expect(page).toContain('id="gather"');
  });

  it("serves the fleet page at /fleet, which asks for an API key before it fetches anything", async () => {
    const page = await html("/fleet");
    expect(page).toContain('<script type="module" src="/assets/fleet.js"></script>');
    expect(page).toContain('id="api-key"');
    expect(page).not.toContain("/assets/room.js");
  });

  it("serves every script and stylesheet the pages load, with the right types", async () => {
    const seen = new Set<string>();
    for (const path of ["/", "/r/some-room", "/ice-test", "/fleet"]) for (const resource of subresources(await html(path))) seen.add(resource);
    expect([...seen].sort()).toEqual(["/assets/fleet.js", "/assets/ice-test.js", "/assets/room.js", "/assets/style.css"]);
    for (const resource of seen) {
      const response = await get(resource);
      expect(response.status, resource).toBe(200);
      expect(response.headers.get("Content-Type"), resource).toMatch(resource.endsWith(".js") ? /javascript/ : /^text\/css/);
      expect((await response.text()).length, resource).toBeGreaterThan(100);
    }
  });

  it("ships the test hooks in the bundles", async () => {
    expect(await (await get("/assets/room.js")).text()).toContain("relaykitDemo");
    expect(await (await get("/assets/ice-test.js")).text()).toContain("relaykitIceTest");
  });

  it("answers HEAD for a room page without a body", async () => {
    const response = await get("/r/some-room", { method: "HEAD" });
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toMatch(/^text\/html/);
    expect(await response.text()).toBe("");
  });
});

describe("security headers on the pages", () => {
  /** Each directive of a Content-Security-Policy, by name. */
  function directives(csp: string | null): Map<string, string[]> {
    expect(csp).not.toBeNull();
    return new Map(csp!.split(";").map((part) => part.trim().split(/\s+/)).filter((words) => words[0]).map(([name, ...values]) => [name!, values]));
  }

  it.each(["/", "/r/some-room", "/ice-test", "/fleet", "/r/bad%20name"])("sends a strict CSP and its companions with %s", async (path) => {
    const response = await get(path);
    const csp = directives(response.headers.get("Content-Security-Policy"));
    expect(csp.get("default-src")).toEqual(["'self'"]);
    expect(csp.get("script-src")).toEqual(["'self'"]);
    expect(csp.get("style-src")).toEqual(["'self'"]);
    expect(csp.get("connect-src")).toEqual(["'self'", "ws://relaykit.test"]);
    expect(csp.get("object-src")).toEqual(["'none'"]);
    expect(csp.get("base-uri")).toEqual(["'none'"]);
    expect(csp.get("frame-ancestors")).toEqual(["'none'"]);
    expect(response.headers.get("Content-Security-Policy")).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(response.headers.get("X-Content-Type-Options")).toBe("nosniff");
    expect(response.headers.get("Referrer-Policy")).toBe("no-referrer");
    expect(response.headers.get("X-Frame-Options")).toBe("DENY");
    expect(response.headers.get("Permissions-Policy")).toMatch(/(^|, )camera=\(self\)(,|$)/);
    expect(response.headers.get("Permissions-Policy")).toMatch(/(^|, )microphone=\(self\)(,|$)/);
    expect(response.headers.get("Cross-Origin-Opener-Policy")).toBe("same-origin");
  });

  it("lets the pages connect to their own origin's WebSocket over wss: when served over https", async () => {
    const response = await exports.default.fetch("https://kit.example.com/r/some-room");
    expect(response.status).toBe(200);
    expect(directives(response.headers.get("Content-Security-Policy")).get("connect-src")).toEqual(["'self'", "wss://kit.example.com"]);
  });

  it("needs nothing inline: the pages have no inline script, style or event handler", async () => {
    for (const path of ["/", "/ice-test", "/fleet"]) {
      const page = await html(path);
      expect(page, path).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
      expect(page, path).not.toMatch(/<style[\s>]/);
      expect(page, path).not.toMatch(/\sstyle=|\son[a-z]+=/);
    }
  });

  it("keeps the headers on a HEAD and on the lobby redirect", async () => {
    expect((await get("/r/some-room", { method: "HEAD" })).headers.get("Content-Security-Policy")).toContain("default-src 'self'");
    expect((await get("/r")).headers.get("X-Frame-Options")).toBe("DENY");
  });

  it("leaves the API's responses alone", async () => {
    const response = await get("/v1/rooms/some-room");
    expect(response.headers.get("Content-Security-Policy")).toBeNull();
  });
});

describe("bad room links", () => {
  it.each([
    ["bad%20name", "bad name"],
    ["a".repeat(65), "a".repeat(65).slice(0, 80)],
    ["semi;colon", "semi;colon"],
    ["a/b", "a/b"],
  ])("answers /r/%s with a 400 page that says what a room name may be", async (path, shown) => {
    const response = await get(`/r/${path}`);
    expect(response.status).toBe(400);
    expect(response.headers.get("Content-Type")).toMatch(/^text\/html/);
    const page = await response.text();
    expect(page).toContain(`“${shown}” is not a room name`);
    expect(page).toContain("1 to 64 characters");
    expect(page).toContain('<a href="/">');
  });

  it("escapes the name it shows", async () => {
    const response = await get("/r/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E");
    expect(response.status).toBe(400);
    const page = await response.text();
    expect(page).not.toContain("<img");
    expect(page).toContain("&#60;img src=x onerror=alert(1)&#62;");
  });

  it("does not fail on a name that is not valid percent-encoding", async () => {
    const response = await get("/r/a%ZZ/b");
    expect(response.status).toBe(400);
    expect(await response.text()).toContain("is not a room name");
  });

  it.each(["/r", "/r/"])("redirects %s to the lobby", async (path) => {
    const response = await get(path);
    expect(response.status).toBe(302);
    expect(new URL(response.headers.get("Location")!, ORIGIN).pathname).toBe("/");
  });
});

describe("the API next to the pages", () => {
  it("answers unknown /v1 paths with the JSON 404, naming the pages too", async () => {
    const response = await get("/v1/nope");
    expect(response.status).toBe(404);
    expect(await errorOf(response)).toMatchObject({ code: "not-found", message: expect.stringContaining("/ice-test") });
  });

  it("answers unknown paths outside /v1 with the JSON 404 as well", async () => {
    const response = await get("/no-such-page");
    expect(response.status).toBe(404);
    expect(await errorOf(response)).toMatchObject({ code: "not-found" });
  });

  it("still serves /v1/rooms/:room as the signaling endpoint", async () => {
    const response = await get("/v1/rooms/some-room");
    expect(response.status).toBe(426);
    expect(await errorOf(response)).toMatchObject({ code: "upgrade-required" });
  });

  it("still serves /v1/ice-servers as the credentials endpoint", async () => {
    // The suite runs with no TURN configuration and no AUTH_MODE: the endpoint refuses, as JSON.
    const response = await get("/v1/ice-servers");
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect((await errorOf(response)).code).toEqual(expect.any(String));
  });

  it("says how to build the pages when the assets are missing", async () => {
    const noAssets = { fetch: async () => new Response("not found", { status: 404 }) } as unknown as Fetcher;
    const response = await worker.fetch(new Request(`${ORIGIN}/r/some-room`), { ...env, ASSETS: noAssets }, createExecutionContext());
    expect(response.status).toBe(500);
    expect(await errorOf(response)).toMatchObject({ code: "pages-missing", message: expect.stringContaining("node scripts/build-web.mjs") });
  });
});
