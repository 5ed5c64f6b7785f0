/**
 * Without WEBHOOK_URL and WEBHOOK_SECRET (this `worker` project sets neither), a room records nothing
 * for webhooks: no outbox, no session row, no table at all.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { TestPeer, freshRoom } from "./peer.js";

it("a room without webhook settings keeps no webhook tables through joins, leaves and its sweep", async () => {
  expect(env.WEBHOOK_URL ?? "").toBe("");
  const room = freshRoom("no-webhooks");
  const ann = await TestPeer.join(room);
  const bob = await TestPeer.join(room);
  await ann.peer.next("peer-joined");
  bob.peer.send({ type: "leave" });
  await ann.peer.next("peer-left");
  ann.peer.close(1000, "bye");
  const stub = env.ROOMS.get(env.ROOMS.idFromName(room));
  const tables = await runInDurableObject(stub, (_instance, state) =>
    state.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").toArray().map((row) => row.name),
  );
  expect(tables).toContain("peers");
  expect(tables.filter((name) => name.startsWith("webhook"))).toEqual([]);
});
