/**
 * The search for the highest offered rate a server relays without losing a message (bench/threads.ts),
 * as a pure function of the steps so far: a ramp up a geometric ladder (start, start × factor, ...) until
 * a step loses messages or the ladder passes the maximum, then a bisection between the last rate that
 * held and the first that did not, until they are within `tolerance` of each other. Bounded in steps.
 */
export interface SearchPlan {
  /** The ladder's first rung (messages per second). */
  startRate: number;
  /** Each rung is the one before times this (> 1). */
  factor: number;
  /** No step above this; a server that holds here is reported as "at least" it. */
  maxRate: number;
  /** Steps at most, ramp and bisection together. */
  maxSteps: number;
  /** Bisection steps at most. */
  bisectSteps: number;
  /** Bisection ends once (failed − held) ≤ tolerance × held. */
  tolerance: number;
}

export interface SearchStep {
  rate: number;
  /** No message lost, and the load offered the whole rate. */
  held: boolean;
}

/** The ladder's rung `index`, a whole number of messages per second. */
export function rung(plan: SearchPlan, index: number): number {
  return Math.round(plan.startRate * plan.factor ** index);
}

/** The next rate to try, or undefined when the search is over. */
export function nextRate(plan: SearchPlan, steps: readonly SearchStep[]): number | undefined {
  if (steps.length >= plan.maxSteps) return undefined;
  const firstFailure = steps.findIndex((step) => !step.held);
  if (firstFailure < 0) {
    // Still ramping: the next rung, unless past the maximum.
    const next = rung(plan, steps.length);
    return next <= plan.maxRate ? next : undefined;
  }
  const bisections = steps.length - firstFailure - 1;
  if (bisections >= plan.bisectSteps) return undefined;
  const { held, failed } = bounds(steps);
  if (failed - held <= plan.tolerance * held) return undefined;
  const mid = Math.round((held + failed) / 2);
  return mid > held && mid < failed ? mid : undefined;
}

/** The highest rate that held (0: none) and the lowest that did not (Infinity: none). */
export function bounds(steps: readonly SearchStep[]): { held: number; failed: number } {
  let held = 0;
  let failed = Number.POSITIVE_INFINITY;
  for (const step of steps) {
    if (step.held) held = Math.max(held, step.rate);
    else failed = Math.min(failed, step.rate);
  }
  return { held, failed };
}

/** The highest ladder rung (its index) that held, or -1: the common rate of several searches on one ladder. */
export function highestRungHeld(plan: SearchPlan, steps: readonly SearchStep[]): number {
  let best = -1;
  for (let index = 0; index < plan.maxSteps; index++) {
    const rate = rung(plan, index);
    if (rate > plan.maxRate) break;
    if (steps.some((step) => step.rate === rate && step.held)) best = index;
  }
  return best;
}
