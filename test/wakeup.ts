/**
 * The wait every test client's "next thing, or time out" loop needs: `sleep(ms)` resolves after `ms`,
 * or as soon as `wake()` is called (a frame arrived, the socket closed). Runs in Node and in workerd.
 */
export class Wakeup {
  private wakeUp: (() => void) | null = null;

  /** Ends the current `sleep`, if any. */
  wake(): void {
    this.wakeUp?.();
  }

  async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wakeUp = null;
  }
}
