/**
 * The local camera and microphone. When they cannot be had, the room is joined receive-only and the
 * page says why, in words a person can act on.
 */
import { messageOf } from "../common/dom.js";

export interface LocalMedia {
  stream: MediaStream | null;
  /** Why there is no camera or microphone (or only one of them); null when both work. */
  problem: string | null;
}

const RECEIVE_ONLY = "You joined receive-only: you see and hear the others, they do not see or hear you.";

function explain(error: unknown): string {
  const name = error instanceof DOMException ? error.name : "";
  switch (name) {
    case "NotAllowedError":
      return `Camera and microphone access was refused. ${RECEIVE_ONLY} Allow access in the browser's site settings and reload to send video.`;
    case "NotFoundError":
    case "OverconstrainedError":
      return `No camera or microphone was found. ${RECEIVE_ONLY}`;
    case "NotReadableError":
      return `The camera or microphone is in use by another application or could not be started. ${RECEIVE_ONLY} Close the other application and reload.`;
    default:
      return `The camera and microphone could not be opened (${messageOf(error)}). ${RECEIVE_ONLY}`;
  }
}

/** Camera and microphone; failing that, either one alone; failing that, nothing and the reason. */
export async function openLocalMedia(): Promise<LocalMedia> {
  const devices = navigator.mediaDevices as MediaDevices | undefined;
  if (devices === undefined || typeof devices.getUserMedia !== "function") {
    return {
      stream: null,
      problem: `This browser offers no camera here: pages need a secure origin (https, or http://localhost). ${RECEIVE_ONLY}`,
    };
  }
  let firstError: unknown;
  try {
    return { stream: await devices.getUserMedia({ video: true, audio: true }), problem: null };
  } catch (error) {
    firstError = error;
    // Refused is refused: asking again for one device would only prompt again.
    if (error instanceof DOMException && (error.name === "NotAllowedError" || error.name === "SecurityError")) return { stream: null, problem: explain(error) };
  }
  for (const [constraints, missing] of [
    [{ video: true }, "microphone"],
    [{ audio: true }, "camera"],
  ] as const) {
    try {
      const stream = await devices.getUserMedia(constraints);
      return { stream, problem: `Only your ${missing === "microphone" ? "camera" : "microphone"} works; the ${missing} could not be opened (${messageOf(firstError)}).` };
    } catch {
      // try the other one
    }
  }
  return { stream: null, problem: explain(firstError) };
}
