/**
 * The relay fleet's suites in real workerd, run as one file: the fleet is one Durable Object per
 * Worker, so its suites must not run beside one another. As files of a project with file
 * parallelism off, vitest ran them one at a time after every other suite of the whole run (about half
 * a minute at its very end); as one file the project runs beside the others. Each suite is a
 * `fleet-*.suite.ts` beside this file; before every test the fleet starts empty.
 */
import "./fleet-control.suite.js";
import "./fleet-ice.suite.js";
import "./fleet-drain.suite.js";
import "./fleet-revoke.suite.js";
import "./fleet-revoke-api.suite.js";
import "./fleet-usage.suite.js";
import "./fleet-moderation.suite.js";
import { beforeEach } from "vitest";
import { resetFleet } from "./fleet-relay.js";

beforeEach(resetFleet);
