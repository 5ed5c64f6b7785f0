/**
 * A minimal typed event emitter for the client library: the same code runs in browsers, Workers and
 * Node, so it depends on none of their emitters. A listener that throws is reported through
 * `onListenerError` and never stops the other listeners or the client's own state machine.
 */
export type EventMap = Record<string, unknown[]>;

type Listener = (...args: unknown[]) => void;

export class Emitter<Events extends EventMap> {
  private readonly listeners = new Map<keyof Events, Set<Listener>>();

  constructor(private readonly onListenerError: (error: unknown) => void = (error) => console.error(error)) {}

  /** Adds a listener; returns the function that removes it. */
  on<Name extends keyof Events>(name: Name, listener: (...args: Events[Name]) => void): () => void {
    let set = this.listeners.get(name);
    if (set === undefined) this.listeners.set(name, (set = new Set()));
    set.add(listener as unknown as Listener);
    return () => this.off(name, listener);
  }

  off<Name extends keyof Events>(name: Name, listener: (...args: Events[Name]) => void): void {
    this.listeners.get(name)?.delete(listener as unknown as Listener);
  }

  protected emit<Name extends keyof Events>(name: Name, ...args: Events[Name]): void {
    const set = this.listeners.get(name);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }
}
