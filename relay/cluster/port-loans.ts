/**
 * The reserved ports one worker lent another (relay/cluster/primary.ts): a RESERVATION-TOKEN's
 * Allocate reached a worker that did not hold the port, so the holder closed it and the asker bound
 * it. The lender keeps the port out of its pool until the loan ends; this book says whom to tell.
 *
 * A lender is named by its slot and by the incarnation that lent (a worker restarted in the slot has
 * every port of its slice free already, and must not be told to free one it may have taken since).
 * Pure bookkeeping: the primary sends the messages.
 */
export interface Loan<Incarnation> {
  lender: number;
  incarnation: Incarnation;
  borrower: number;
}

export class PortLoans<Incarnation> {
  private readonly byPort = new Map<number, Loan<Incarnation>>();

  get size(): number {
    return this.byPort.size;
  }

  lend(port: number, loan: Loan<Incarnation>): void {
    this.byPort.set(port, loan);
  }

  /** The borrower in slot `borrower` gave `port` back: the loan, if it was that borrower's, for the lender to be told. */
  giveBack(port: number, borrower: number): Loan<Incarnation> | undefined {
    const loan = this.byPort.get(port);
    if (loan === undefined || loan.borrower !== borrower) return undefined;
    this.byPort.delete(port);
    return loan;
  }

  /**
   * The worker in `slot` died. The ports it borrowed closed with it: those loans end, returned as
   * [port, loan] for their lenders to be told. The ports it lent are forgotten: its successor starts
   * with all of them free.
   */
  workerGone(slot: number): [number, Loan<Incarnation>][] {
    const ended: [number, Loan<Incarnation>][] = [];
    for (const [port, loan] of this.byPort) {
      if (loan.borrower === slot) {
        this.byPort.delete(port);
        ended.push([port, loan]);
      } else if (loan.lender === slot) {
        this.byPort.delete(port);
      }
    }
    return ended;
  }
}
