/**
 * How `--udp-io` and `--tcp-io` are resolved: `auto` takes the native addon when it loads and the
 * Node fallback otherwise; `native` insists on the addon (start-up fails, saying why); the fallback
 * is taken as asked.
 */
export type NativeLoad = { ok: true } | { ok: false; reason: string };

/** The implementation `io` means on this machine; throws when `native` is asked for and cannot load. */
export function resolveIo<Fallback extends string>(option: string, io: "auto" | "native" | Fallback, fallback: Fallback, load: () => NativeLoad): "native" | Fallback {
  if (io === fallback) return fallback;
  const native = load();
  if (native.ok) return "native";
  if (io === "native") throw new Error(`${option}=native: ${native.reason}`);
  return fallback;
}
