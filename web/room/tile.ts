/**
 * One video tile: a person's video, their name, the connection state and the path the call took.
 * Your own tile is muted (no echo) and mirrored (as a mirror, which is what people expect).
 */
import { element } from "../common/dom.js";

export class Tile {
  readonly root: HTMLElement;
  private readonly video: HTMLVideoElement;
  private readonly state: HTMLElement;
  private readonly details: HTMLElement;
  private readonly unmute: HTMLButtonElement;

  constructor(name: string, options: { self: boolean }) {
    this.video = element("video", { attributes: { autoplay: "", playsinline: "", "aria-label": `${name}'s video` } });
    this.video.muted = options.self;
    this.state = element("span", { className: "badge", hidden: options.self });
    this.details = element("span", { className: "details" });
    this.unmute = element("button", { className: "unmute", hidden: true, attributes: { type: "button" } }, `Play ${name}'s sound`);
    this.unmute.addEventListener("click", () => {
      this.unmute.hidden = true;
      this.video.muted = false;
      void this.video.play().catch(() => (this.unmute.hidden = false));
    });
    this.root = element(
      "figure",
      { className: options.self ? "tile self" : "tile" },
      this.video,
      element("figcaption", {}, element("span", { className: "name" }, name), this.state, this.details, this.unmute),
    );
  }

  /** Shows `stream`; when the browser blocks sound without a click, plays muted and offers a button. */
  show(stream: MediaStream): void {
    if (this.video.srcObject !== stream) this.video.srcObject = stream;
    void this.video.play().catch((error: unknown) => {
      if (!(error instanceof DOMException && error.name === "NotAllowedError") || this.video.muted) return;
      this.video.muted = true;
      this.unmute.hidden = false;
      void this.video.play().catch(() => {});
    });
  }

  setState(state: string): void {
    this.state.textContent = state;
    this.state.dataset["state"] = state;
  }

  setDetails(text: string): void {
    this.details.textContent = text;
  }

  remove(): void {
    this.video.srcObject = null;
    this.root.remove();
  }
}
