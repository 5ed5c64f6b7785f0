/**
 * Security headers for the demo pages (`/`, `/r/:room`, `/ice-test`, and the Worker's own error
 * page for a bad room link). The pages load only their own bundles and stylesheet, so the policy can
 * be strict: nothing inline, nothing from elsewhere, no framing.
 *
 * - `connect-src 'self' ws(s)://<this host>`: the room's WebSocket and /v1/ice-servers. `'self'`
 *   covers ws/wss in CSP 3 browsers; the explicit origin is for those that predate it. WebRTC's own
 *   STUN/TURN traffic is not governed by CSP.
 * - `img-src 'self' data:`: the pages' favicon is `data:,` (so a browser does not ask for one).
 * - `Referrer-Policy: no-referrer`: a room's URL names the room (and may carry `#token=`); a link
 *   followed out of it must not tell another site which room it came from.
 * - `Permissions-Policy`: camera and microphone for this origin only (the call needs them), nothing
 *   for frames or other origins; the other powerful features the pages never use are off.
 */
import type { MiddlewareHandler } from "hono";
import type { Env } from "../env.js";

/** Everything but `connect-src`, which names the page's own WebSocket origin. */
const FIXED_DIRECTIVES = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
];

export const PAGE_PERMISSIONS_POLICY = "camera=(self), microphone=(self), display-capture=(), geolocation=(), payment=(), usb=()";

/** The Content-Security-Policy for a page served at `pageUrl`. */
export function pageContentSecurityPolicy(pageUrl: string): string {
  const url = new URL(pageUrl);
  const socketOrigin = `${url.protocol === "https:" ? "wss:" : "ws:"}//${url.host}`;
  return [...FIXED_DIRECTIVES, `connect-src 'self' ${socketOrigin}`].join("; ");
}

/** Adds the page headers to whatever the route answered (an asset, an error page, a redirect). */
export const pageSecurityHeaders: MiddlewareHandler<{ Bindings: Env }> = async (c, next) => {
  await next();
  // An asset's response may have immutable headers: answer with a copy.
  const response = new Response(c.res.body, c.res);
  response.headers.set("Content-Security-Policy", pageContentSecurityPolicy(c.req.url));
  response.headers.set("X-Content-Type-Options", "nosniff");
  response.headers.set("Referrer-Policy", "no-referrer");
  response.headers.set("X-Frame-Options", "DENY");
  response.headers.set("Permissions-Policy", PAGE_PERMISSIONS_POLICY);
  response.headers.set("Cross-Origin-Opener-Policy", "same-origin");
  c.res = response;
};
