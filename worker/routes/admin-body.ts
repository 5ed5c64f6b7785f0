/**
 * The kick's request body, read and checked: at most a bounded number of bytes, then either nothing
 * (no ban) or `{"banSeconds": N}` with N a whole number of seconds from 0 (no ban) to the maximum.
 */

export type KickBody = { ok: true; banSeconds: number } | { ok: false; message: string };

/**
 * The request body as text, or null when it is over `maxBytes`. Reads no further than the limit, so a
 * large or endless body costs no more than `maxBytes` (a Content-Length over it is refused unread).
 */
export async function readBoundedText(request: Request, maxBytes: number): Promise<string | null> {
  const declared = request.headers.get("Content-Length");
  if (declared !== null && Number(declared) > maxBytes) return null;
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

/** Parses the kick's body: empty (or whitespace) means no ban. */
export function parseKickBody(text: string, maxBanSeconds: number): KickBody {
  const shape = `send no body, or {"banSeconds": N} with N a whole number of seconds from 0 to ${maxBanSeconds}`;
  if (text.trim() === "") return { ok: true, banSeconds: 0 };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, message: `the body is not JSON; ${shape}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { ok: false, message: `the body must be a JSON object; ${shape}` };
  const fields = value as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((key) => key !== "banSeconds");
  if (unknown.length > 0) return { ok: false, message: `unknown field ${JSON.stringify(unknown[0])}; ${shape}` };
  const banSeconds = fields["banSeconds"];
  if (banSeconds === undefined) return { ok: true, banSeconds: 0 };
  if (typeof banSeconds !== "number" || !Number.isInteger(banSeconds) || banSeconds < 0 || banSeconds > maxBanSeconds) {
    return { ok: false, message: `banSeconds is ${JSON.stringify(banSeconds)}; ${shape}` };
  }
  return { ok: true, banSeconds };
}
