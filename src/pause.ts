/**
 * How long work that is not the push path's may hold the event loop before it yields, and the
 * yield itself: shared by the hub's slices of a big snapshot (hub/slicing.ts) and the transport's
 * read of a streamed body (http.ts), so that no piece of a poll blocks notifications for longer.
 *
 * One budget per turn of the event loop, shared by every kind of slice: the next poll's pages are
 * read while the last poll is normalized and prepared, and with a budget each, one turn held a
 * slice of each (3 × 5 ms) before a notification that came meanwhile was served (docs/scale.md,
 * "One budget per turn"). A turn runs from one of this module's immediates (the drain) to the
 * next, so it holds exactly one poll for I/O; its budget starts with the first slice that asks.
 * A budget that work coming with I/O began (a page delivered, the next page's request, a parse
 * worker's batch: the poll phase, before the drain) is not begun again by the drain that follows:
 * a notification read in the next poll for I/O waits for both, so both share one budget (session
 * 11, docs/scale.md "Turns that hold no more than their budget").
 * Slices that yielded wait in line, first come first served: each drain lets the first go on, and
 * whenever a slice ends with budget left the next one that waited since an earlier turn goes on
 * in the same turn, so a slice that ended early leaves the rest to another rather than to nothing
 * (one slice per turn, tried in session 8, slowed the polls by that). A slice that finds the
 * budget spent before it did anything (a page's chunk that came in a spent turn) waits at the
 * head of the line: the page reader stops for bytes every few chunks and leaves its turn's rest
 * to the others, and sent to the back each time its bytes came it would read a chunk every few
 * turns, so the next poll's pages would come slower while the last one is diffed.
 */

/**
 * The default budget per turn. Measured with the isolation benchmark at 5, 3, 2 and 1 ms
 * (docs/scale.md, "One budget per turn"): 2 ms halved the push path's median latency during polls
 * against 5 ms, with polls as frequent.
 */
export const SLICE_MS = 2;

export interface TurnBudgetOptions {
  /** Milliseconds of sliced work per turn of the event loop, all slices together (default {@link SLICE_MS}). */
  sliceMs?: number;
  /** The clock (default `performance.now`). */
  now?: () => number;
}

interface Waiter {
  go: () => void;
  /** The turn in which it yielded: it goes on in a later one. */
  turn: number;
  /** It yielded before doing anything, the budget spent: it waits ahead of those that had theirs. */
  denied: boolean;
}

/** The budget of sliced work per turn of the event loop and the line of slices waiting for it. */
export class TurnBudget {
  private ms: number;
  private readonly now: () => number;
  /** Turns begun (drains run). */
  private turns = 0;
  /** When this turn's budget is spent; undefined until a slice of the turn asks. */
  private ends: number | undefined;
  /**
   * The budget running now was begun by a drain (or carried through one): the next drain begins
   * another. False when work that came with I/O (a page's delivery, the next page's request, a
   * worker's batch) began it after the last drain: the drain that follows goes on with it.
   */
  private fromDrain = false;
  private readonly waiting: Waiter[] = [];
  private drainQueued = false;

  constructor(options: TurnBudgetOptions = {}) {
    this.ms = checkedSliceMs(options.sliceMs ?? SLICE_MS);
    this.now = options.now ?? (() => performance.now());
  }

  get sliceMs(): number {
    return this.ms;
  }

  set sliceMs(ms: number) {
    this.ms = checkedSliceMs(ms);
  }

  /** The turn's number: how many turns this budget has begun. */
  get turn(): number {
    return this.turns;
  }

  /** When the slice running now must end: this turn's budget's end (the first slice of a turn starts it). */
  readonly deadline = (): number => {
    if (this.ends === undefined) {
      this.ends = this.now() + this.ms;
      this.fromDrain = false;
      this.queueDrain();
    }
    return this.ends;
  };

  /** Whether this turn's budget is spent: a slice that starts then yields at once. */
  readonly spent = (): boolean => this.now() >= this.deadline();

  /**
   * Yields: resolves in a later turn of the event loop (pending I/O runs first), when the slices
   * that waited before this one have had theirs. `denied`: the caller did nothing in this turn
   * (it found the budget spent at its start), so it waits ahead of the slices that ran.
   */
  readonly pause = (denied = false): Promise<void> =>
    new Promise<void>((go) => {
      const waiter = { go, turn: this.turns, denied };
      if (denied) {
        let at = 0;
        while (at < this.waiting.length && this.waiting[at]!.denied) at += 1;
        this.waiting.splice(at, 0, waiter);
      } else {
        this.waiting.push(waiter);
      }
      this.queueDrain();
      this.letGo();
    });

  /**
   * The caller's slice ended without a pause (it waits for I/O, or its work is done): with budget
   * left, the next slice waiting since an earlier turn goes on now. With budget left and none to
   * go on, what is left goes to the work that comes next — most often with the next poll for I/O
   * (a page's end, a worker's batch) — and the drain after that goes on with it too, instead of
   * beginning another budget on top of it.
   */
  readonly release = (): void => {
    if (this.letGo() || this.ends === undefined || this.now() >= this.ends) return;
    this.fromDrain = false;
  };

  /** With budget left, lets the next slice waiting since an earlier turn go on; says whether one did. */
  private letGo(): boolean {
    const next = this.waiting[0];
    if (next === undefined || next.turn >= this.turns || this.ends === undefined || this.now() >= this.ends) return false;
    this.waiting.shift();
    next.go();
    return true;
  }

  private queueDrain(): void {
    if (this.drainQueued) return;
    this.drainQueued = true;
    setImmediate(this.drain);
  }

  /** A new turn: the first in line goes on with the whole budget, the others as slices end. */
  private readonly drain = (): void => {
    this.drainQueued = false;
    this.turns += 1;
    const first = this.waiting.shift();
    if (first === undefined) {
      this.ends = undefined;
      return;
    }
    this.queueDrain();
    if (this.ends !== undefined && !this.fromDrain) {
      // Work that came with this loop's I/O began the budget since the last drain: the event loop
      // has not polled for I/O since, so this is the same turn for whatever waits on a socket, and
      // it goes on with what is left; spent, the line waits for the next drain, which begins anew.
      this.fromDrain = true;
      if (this.now() >= this.ends) {
        this.waiting.unshift(first);
        return;
      }
    } else {
      // Its slice starts now (it may not ask before its first piece of work, as a page's chunk in hand).
      this.ends = this.now() + this.ms;
      this.fromDrain = true;
    }
    first.go();
  };
}

function checkedSliceMs(ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`sliceMs must be a positive number of milliseconds, not ${ms}`);
  return ms;
}

/** The process's budget: the hub's slices and the transport's reads share it. */
export const turnBudget = new TurnBudget();

/**
 * Sets the milliseconds of sliced work (reading big responses, normalizing and preparing big
 * snapshots) that one turn of the event loop may hold, all of it together: shorter slices serve
 * notifications sooner during polls, at the cost of more turns per poll (docs/scale.md).
 */
export function setSliceMs(ms: number): void {
  turnBudget.sliceMs = ms;
}

/** The process's slice length (ms per turn). */
export function sliceMs(): number {
  return turnBudget.sliceMs;
}

/** Yields to the event loop (the process's budget, {@link TurnBudget.pause}). */
export const pauseForIo = turnBudget.pause;
