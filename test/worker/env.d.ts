// `env` from "cloudflare:workers" in tests is the Worker's own Env.
declare namespace Cloudflare {
  interface Env extends import("../../worker/env.js").Env {}
  interface GlobalProps {
    mainModule: typeof import("../../worker/index.js");
  }
}
