/**
 * The webhook suites in real workerd, run as one file: they share the receiver on loopback
 * (test/node/webhook-receiver.ts, started by the project's globalSetup) and its failure rules, and the
 * fleet object, so they must not run beside one another. As files of a project with file parallelism
 * off, vitest ran them one at a time after every other suite of the whole run; as one file the
 * project runs beside the others. Each suite is a `*.suite.ts` beside this file.
 */
import "./room-webhooks.suite.js";
import "./fleet-webhooks.suite.js";
import "./outbox-bounds.suite.js";
