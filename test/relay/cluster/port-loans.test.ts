/**
 * The primary's book of reserved ports lent between workers (relay/cluster/port-loans.ts): who is
 * told when a loan ends, and what a worker's death ends.
 */
import { describe, expect, it } from "vitest";
import { PortLoans } from "../../../relay/cluster/port-loans.js";

describe("PortLoans", () => {
  it("ends a loan when its borrower gives the port back, and only then", () => {
    const loans = new PortLoans<string>();
    loans.lend(50001, { lender: 0, incarnation: "worker-0a", borrower: 1 });
    // Another worker cannot end it.
    expect(loans.giveBack(50001, 0)).toBeUndefined();
    expect(loans.giveBack(50003, 1)).toBeUndefined();
    expect(loans.giveBack(50001, 1)).toEqual({ lender: 0, incarnation: "worker-0a", borrower: 1 });
    // Given back once: a second give-back changes nothing.
    expect(loans.giveBack(50001, 1)).toBeUndefined();
    expect(loans.size).toBe(0);
  });

  it("when a borrower dies, ends its loans for their lenders to be told; when a lender dies, forgets its loans", () => {
    const loans = new PortLoans<string>();
    loans.lend(50001, { lender: 0, incarnation: "worker-0a", borrower: 1 });
    loans.lend(50003, { lender: 0, incarnation: "worker-0a", borrower: 2 });
    loans.lend(50101, { lender: 1, incarnation: "worker-1a", borrower: 2 });
    expect(loans.workerGone(2)).toEqual([
      [50003, { lender: 0, incarnation: "worker-0a", borrower: 2 }],
      [50101, { lender: 1, incarnation: "worker-1a", borrower: 2 }],
    ]);
    // Worker 0 dies: its successor's pool is fresh, so nobody is told of 50001; the borrower's
    // later give-back finds no loan.
    expect(loans.workerGone(0)).toEqual([]);
    expect(loans.giveBack(50001, 1)).toBeUndefined();
    expect(loans.size).toBe(0);
  });
});
