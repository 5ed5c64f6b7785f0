/**
 * A millisecond clock the data path can read for free. `Date.now()` per packet adds up; expiry
 * checks only need to be right to within the tick, far below the minutes permissions live.
 */
export class CoarseClock {
  now = Date.now();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly tickMs = 100) {}

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => (this.now = Date.now()), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
