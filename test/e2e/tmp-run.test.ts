import { it } from "vitest";
import { writeFileSync } from "node:fs";
import { runBrowserScript } from "./browser/netns-run.js";
it("run", async () => {
  const { summary, details } = await runBrowserScript<any>("moderation-call.ts", ["--timeout-ms=130000"], 150_000);
  writeFileSync("/tmp/mod-summary.json", JSON.stringify(summary, null, 1));
  writeFileSync("/tmp/mod-details.txt", details);
}, 160_000);
