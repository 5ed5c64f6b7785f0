/**
 * One request as the test webhook receiver (test/node/webhook-receiver.ts) recorded it: the shape its
 * control path answers with, read by the workerd suites and the end-to-end test alike.
 */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  /** The raw body: signatures are over these exact bytes. */
  body: string;
  /** Milliseconds since the epoch when the body was complete. */
  receivedAt: number;
  /** The status the receiver answered. */
  status: number;
}
