import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { HttpErrorBody } from "../shared/signaling/protocol.js";

/** Every HTTP error the Worker answers: a stable code and a sentence saying what to do. */
export function httpError(c: Context, status: ContentfulStatusCode, code: string, message: string): Response {
  const body: HttpErrorBody = { error: { code, message } };
  return c.json(body, status);
}
