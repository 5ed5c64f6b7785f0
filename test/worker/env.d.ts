// Types for "cloudflare:workers" in tests: `env` is the Worker's Env, `exports` its main module.
import type { Env as WorkerEnv } from "../../worker/env.js";

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {}
    interface GlobalProps {
      mainModule: typeof import("../../worker/index.js");
    }
  }
}
