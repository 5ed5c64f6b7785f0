/**
 * Webhook signatures (shared/webhooks/signature.ts) as an app backend uses them: what the Worker
 * signs verifies, and every way a request can be wrong is refused with its own reason.
 */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parseWebhookEvent, webhookEvent } from "../../shared/webhooks/events.js";
import { DEFAULT_TOLERANCE_SECONDS, signWebhook, verifyWebhook } from "../../shared/webhooks/signature.js";

const SECRET = "app-webhook-secret-0123456789abcdef-0123";
const OLD_SECRET = "old-webhook-secret-0123456789abcdef-0123";
const now = () => Math.floor(Date.now() / 1000);
const body = JSON.stringify(webhookEvent("peer-left", { peerId: "ann", reason: "kicked" }, Date.now(), "room-1"));

describe("signWebhook + verifyWebhook", () => {
  it("verifies what was signed and returns the event", async () => {
    const signature = await signWebhook([SECRET], body, now());
    expect(signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    const result = await verifyWebhook({ body, signature, secrets: SECRET });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.event.type).toBe("peer-left");
    expect(result.event.room).toBe("room-1");
    expect(result.event.id).toMatch(/^evt_[0-9a-f-]{36}$/);
    expect(result.event.data).toEqual({ peerId: "ann", reason: "kicked" });
  });

  it("signs HMAC-SHA256 over '<t>.<body>' in hex (what any language can recompute)", async () => {
    const t = now();
    const expected = createHmac("sha256", SECRET).update(`${t}.${body}`).digest("hex");
    expect(await signWebhook([SECRET], body, t)).toBe(`t=${t},v1=${expected}`);
  });

  it("refuses a tampered body", async () => {
    const signature = await signWebhook([SECRET], body, now());
    const result = await verifyWebhook({ body: body.replace("kicked", "left"), signature, secrets: SECRET });
    expect(result).toMatchObject({ ok: false, reason: "signature-mismatch" });
  });

  it("refuses a signature under another secret", async () => {
    const signature = await signWebhook(["some-other-secret-0123456789abcdef-01234"], body, now());
    expect(await verifyWebhook({ body, signature, secrets: SECRET })).toMatchObject({ ok: false, reason: "signature-mismatch" });
  });

  it("refuses a timestamp older or further ahead than the tolerance, and accepts one just inside", async () => {
    const old = now() - DEFAULT_TOLERANCE_SECONDS - 5;
    expect(await verifyWebhook({ body, signature: await signWebhook([SECRET], body, old), secrets: SECRET })).toMatchObject({ ok: false, reason: "timestamp-too-old" });
    const ahead = now() + DEFAULT_TOLERANCE_SECONDS + 5;
    expect(await verifyWebhook({ body, signature: await signWebhook([SECRET], body, ahead), secrets: SECRET })).toMatchObject({ ok: false, reason: "timestamp-in-future" });
    const inside = now() - DEFAULT_TOLERANCE_SECONDS + 5;
    expect((await verifyWebhook({ body, signature: await signWebhook([SECRET], body, inside), secrets: SECRET })).ok).toBe(true);
    // A custom tolerance applies.
    const minuteOld = now() - 60;
    expect(await verifyWebhook({ body, signature: await signWebhook([SECRET], body, minuteOld), secrets: SECRET, toleranceSeconds: 30 })).toMatchObject({ ok: false, reason: "timestamp-too-old" });
  });

  it("refuses a timestamp changed after signing (it is inside the MAC)", async () => {
    const t = now();
    const signature = await signWebhook([SECRET], body, t);
    const moved = signature.replace(`t=${t}`, `t=${t + 1}`);
    expect(await verifyWebhook({ body, signature: moved, secrets: SECRET })).toMatchObject({ ok: false, reason: "signature-mismatch" });
  });

  it("says which is wrong: a missing header, a garbled one", async () => {
    for (const signature of [undefined, null, "", "  "]) {
      expect(await verifyWebhook({ body, signature, secrets: SECRET })).toMatchObject({ ok: false, reason: "missing-signature" });
    }
    const good = await signWebhook([SECRET], body, now());
    const garbled = [
      "garbage",
      `t=${now()}`,
      good.replace(/v1=[0-9a-f]+/, "v1=xyz"),
      good.replace(/v1=([0-9a-f]+)/, "v1=$1aa"),
      good.replace(/^t=\d+/, "t=soon"),
      `${good},t=${now()}`,
      `t=${now()},${Array.from({ length: 9 }, () => `v1=${"a".repeat(64)}`).join(",")}`,
    ];
    for (const signature of garbled) {
      const result = await verifyWebhook({ body, signature, secrets: SECRET });
      expect(result, signature).toMatchObject({ ok: false, reason: "malformed-signature" });
      if (!result.ok) expect(result.message).toMatch(/t=<unix seconds>,v1=/);
    }
  });

  it("rotation: two secrets sign two v1, and an app with either secret verifies", async () => {
    const signature = await signWebhook([SECRET, OLD_SECRET], body, now());
    expect(signature.split(",").filter((part) => part.startsWith("v1="))).toHaveLength(2);
    expect((await verifyWebhook({ body, signature, secrets: SECRET })).ok).toBe(true);
    expect((await verifyWebhook({ body, signature, secrets: OLD_SECRET })).ok).toBe(true);
    // An app that holds both (mid-rotation on its side) verifies a Worker that has only one.
    const single = await signWebhook([OLD_SECRET], body, now());
    expect((await verifyWebhook({ body, signature: single, secrets: [SECRET, OLD_SECRET] })).ok).toBe(true);
    expect(await verifyWebhook({ body, signature: single, secrets: [SECRET] })).toMatchObject({ ok: false, reason: "signature-mismatch" });
  });

  it("needs a secret, and refuses a signed body that is not an event", async () => {
    expect(await verifyWebhook({ body, signature: "t=1,v1=" + "a".repeat(64), secrets: [] })).toMatchObject({ ok: false, reason: "no-secret" });
    const notEvent = JSON.stringify({ hello: "world" });
    expect(await verifyWebhook({ body: notEvent, signature: await signWebhook([SECRET], notEvent, now()), secrets: SECRET })).toMatchObject({ ok: false, reason: "bad-event" });
    expect(await verifyWebhook({ body: "{", signature: await signWebhook([SECRET], "{", now()), secrets: SECRET })).toMatchObject({ ok: false, reason: "bad-event" });
  });
});

describe("parseWebhookEvent", () => {
  it("checks the envelope: type, id, createdAt, room on room events, data", () => {
    const at = Date.now();
    expect(typeof parseWebhookEvent(webhookEvent("relay-lost", { relayId: "r1", reason: "silent", lastHeartbeatAt: null }, at))).toBe("object");
    expect(parseWebhookEvent({ ...webhookEvent("room-started", { startedAt: new Date(at).toISOString() }, at), room: undefined })).toMatch(/names its room/);
    expect(parseWebhookEvent({ ...webhookEvent("relay-draining", { relayId: "r1" }, at), type: "relay-exploded" })).toMatch(/unknown event type/);
    expect(parseWebhookEvent([])).toMatch(/not a JSON object/);
  });
});
