/**
 * Keeps V8's young generation at its starting size (1 MB semi-spaces) instead of letting it grow to
 * 16 MB ones. Imported first by main.ts, so it runs before anything else of the relay allocates.
 *
 * Why: a burst of allocations (10,000 Allocates) makes V8 grow the young generation to 2 x 16 MB,
 * and it never gives the pages back while the relay idles: ~25 MB of a 130 MB RSS with 10,000 idle
 * allocations (issue 16's target is < 100 MB). The relay's data path allocates next to nothing per
 * packet, so a small young generation costs it no measurable CPU (see the commit that added this).
 *
 * How: `--max-semi-space-size` is read only when the heap is made, before any JavaScript runs, so
 * it would need every way the relay is started (the container, `npm run relay`, `node relay.mjs`,
 * npx) to pass it. `--semi-space-growth-factor` is read each time V8 grows the young generation,
 * so setting it here works for all of them. An operator who wants a larger young generation anyway
 * passes `node --min-semi-space-size=<MB>`: it then starts, and stays, at that size.
 */
import { setFlagsFromString } from "node:v8";

/** Growth factor 1: the young generation stays at the size it starts with. */
export const YOUNG_GENERATION_FLAG = "--semi-space-growth-factor=1";

setFlagsFromString(YOUNG_GENERATION_FLAG);
