import { firstValueFrom, of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { emptyBaseline, indexedBaseline } from '../../operators/diffAgainstBaseline.js';
import { SLICE_CHECK, type SliceOptions, inSlices } from '../../operators/normalizeEntity.js';
import { preparedInSlices } from '../../src/hub/slicing.js';
import { parseConfig } from '../../src/config.js';
import { SLICE_MS, TurnBudget, setSliceMs, sliceMs, turnBudget } from '../../src/pause.js';
import { entity, snapshot, t } from '../support/entities.js';

/**
 * The budget of sliced work per turn (src/pause.ts), with a real event loop and fake work: a
 * clock that only the work moves (an item costs `cost` ms of it), and turns counted by an
 * immediate that queues itself again each time it runs (once per turn of the loop). Queued
 * before any slice, it runs ahead of the budget's own immediate in every turn, so what runs
 * between two of its ticks is one turn's sliced work.
 */
function harness(options: { sliceMs: number; cost: number }) {
  let clock = 0;
  let ticks = 0;
  let ticking = true;
  /** Work runs in a poll for I/O (a port's message, and its microtasks) until the next tick. */
  let inIo = false;
  const tick = (): void => {
    ticks += 1;
    inIo = false;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const budget = new TurnBudget({ sliceMs: options.sliceMs, now: () => clock });
  /** Fake work done per tick, all kinds together. */
  const perTurn = new Map<number, number>();
  /**
   * Fake work done per turn of the loop as a message on a socket sees it, from one poll for I/O to
   * the next: what a poll for I/O runs belongs with the ticks that follow it (the check phase).
   */
  const perLoop = new Map<number, number>();
  /** The ticks in which each kind made progress. */
  const progress = new Map<string, number[]>();
  const work = (kind: string, items: number): void => {
    clock += items * options.cost;
    perTurn.set(ticks, (perTurn.get(ticks) ?? 0) + items * options.cost);
    const loop = inIo ? ticks + 1 : ticks;
    perLoop.set(loop, (perLoop.get(loop) ?? 0) + items * options.cost);
    const turns = progress.get(kind) ?? [];
    if (turns.at(-1) !== ticks) turns.push(ticks);
    progress.set(kind, turns);
  };
  const slices = (records: number): SliceOptions => ({ records, deadline: budget.deadline, pause: budget.pause, release: budget.release, now: () => clock });
  /** The hub's kind of slice: normalizeEntity's and the preparation's loop. */
  const sliced = (kind: string, length: number, records = 1000): Promise<boolean> => inSlices(length, slices(records), (from, to) => work(kind, to - from));
  /**
   * The page reader's kind (src/http.ts readSelected): a chunk of `items` comes each turn (an
   * immediate stands for the socket), and is read unless the turn's budget is spent.
   */
  const reader = async (kind: string, chunks: number, items: number): Promise<void> => {
    for (let i = 0; i < chunks; i++) {
      budget.release();
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (budget.spent()) await budget.pause(true);
      work(kind, items);
    }
  };
  const stop = (): void => {
    ticking = false;
  };
  const advance = (ms: number): void => {
    clock += ms;
  };
  /** Runs `handler` as an I/O callback (a poll for I/O: before this loop's ticks). */
  const io =
    <A extends unknown[]>(handler: (...args: A) => void) =>
    (...args: A): void => {
      inIo = true;
      handler(...args);
    };
  return { budget, perTurn, perLoop, progress, slices, sliced, reader, io, stop, advance, turns: () => ticks };
}

/** The longest run of turns in which a kind that still had work made no progress. */
function longestWait(turns: number[]): number {
  let longest = 0;
  for (let i = 1; i < turns.length; i++) longest = Math.max(longest, turns[i]! - turns[i - 1]! - 1);
  return longest;
}

describe('one budget of sliced work per turn of the event loop', () => {
  it('the slices of a turn share it: a page read and two snapshots sliced at once hold at most one budget (and a check) per turn', async () => {
    // 5 ms a turn; 100 items (one look at the clock) cost 1 ms.
    const h = harness({ sliceMs: 5, cost: 0.01 });
    await Promise.all([h.sliced('normalize', 6000), h.sliced('prepare', 6000), h.reader('read', 60, 100)]);
    h.stop();
    const total = [...h.perTurn.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeCloseTo(180);
    // A slice ends at the first look at the clock past the budget's end: at most one step more.
    expect(Math.max(...h.perTurn.values())).toBeLessThanOrEqual(5 + 1 + 1e-9);
    // And the budget is used: while the snapshots had work, every turn held its 5 ms (the reader,
    // a chunk a turn here, leaves the rest of its turns to them), so the work is not spread over
    // more turns than it needs.
    const lastHubTurn = Math.max(...h.progress.get('normalize')!, ...h.progress.get('prepare')!);
    for (const [turn, ms] of h.perTurn) if (turn < lastHubTurn) expect(ms, `turn ${turn}`).toBeGreaterThanOrEqual(5 - 1e-9);
    expect(h.progress.get('read')!.filter((turn) => turn <= lastHubTurn).length).toBeGreaterThanOrEqual(lastHubTurn / 2 - 1);
  });

  it('no kind of slice starves: each makes progress at least every third turn while it has work, first come first served', async () => {
    const h = harness({ sliceMs: 5, cost: 0.01 });
    await Promise.all([h.sliced('normalize', 20_000), h.sliced('prepare', 20_000), h.reader('read', 100, 100)]);
    h.stop();
    for (const kind of ['normalize', 'prepare', 'read']) {
      const turns = h.progress.get(kind)!;
      expect(turns.length, kind).toBeGreaterThan(10);
      // Three kinds waiting in line: each gets the turn's budget first at least every third turn.
      expect(longestWait(turns), kind).toBeLessThanOrEqual(2);
    }
  });

  it('a slice that ends early leaves the rest of the turn to the next in line', async () => {
    // Slices of 200 items (2 ms): two or three of them fit in a turn's 5 ms.
    const h = harness({ sliceMs: 5, cost: 0.01 });
    await Promise.all([h.sliced('a', 2000, 200), h.sliced('b', 2000, 200), h.sliced('c', 2000, 200)]);
    h.stop();
    // 30 slices, 60 ms: one slice per turn would take 30 turns; shared, 12 turns (a, b and half
    // of c's) and the rest of c alone, one slice per turn (a pause lets a turn go by).
    expect(h.perTurn.size).toBeLessThanOrEqual(16);
  });

  it('a pause always lets a turn go by: a slice never goes on in the turn it yielded in', async () => {
    const h = harness({ sliceMs: 5, cost: 0.01 });
    // Slices of 100 items (1 ms): the budget would let one slice go on five times in a turn.
    await Promise.all([h.sliced('a', 3000, 100), h.sliced('b', 3000, 100)]);
    h.stop();
    for (const kind of ['a', 'b']) {
      const turns = h.progress.get(kind)!;
      // Each turn that one of them worked in holds one of its slices: 30 slices, 30 turns.
      expect(turns, kind).toHaveLength(30);
    }
  });

  it('a slice that would start when the budget is spent yields at once', async () => {
    const h = harness({ sliceMs: 5, cost: 0.01 });
    await new Promise<void>((resolve) => setImmediate(resolve));
    const turn = h.turns();
    // Another slice of this turn (a page read) began the budget and spent it; then a big snapshot comes.
    h.budget.deadline();
    h.advance(6);
    const ran: number[] = [];
    const done = inSlices(500, h.slices(1000), () => ran.push(h.turns()));
    expect(ran).toEqual([]);
    await done;
    h.stop();
    expect(ran[0]).toBeGreaterThan(turn);
  });

  it('the process budget is the one setSliceMs sets, and a slice length must be a positive number', () => {
    expect(sliceMs()).toBe(SLICE_MS);
    try {
      setSliceMs(2);
      expect(turnBudget.sliceMs).toBe(2);
      expect(() => setSliceMs(0)).toThrow(/sliceMs must be a positive number of milliseconds, not 0/);
      expect(() => setSliceMs(Number.NaN)).toThrow(/not NaN/);
      expect(sliceMs()).toBe(2);
    } finally {
      setSliceMs(SLICE_MS);
    }
  });

  it('the service takes the slice length from sliceTime (default 5ms, at least 1ms)', async () => {
    const sources = [{ name: 's', use: 'static', file: 'x.yaml' }];
    expect((await parseConfig({ sources }, '/tmp')).sliceMs).toBe(SLICE_MS);
    expect((await parseConfig({ sliceTime: '2ms', sources }, '/tmp')).sliceMs).toBe(2);
    await expect(parseConfig({ sliceTime: '0ms', sources }, '/tmp')).rejects.toThrow(/^sliceTime: expected a duration of at least 1ms/);
    await expect(parseConfig({ sliceTime: 'short', sources }, '/tmp')).rejects.toThrow(/^sliceTime: expected a duration/);
  });

  it('a piece of work that comes when the budget is spent goes first next turn, and when it is done leaves the rest of that turn to the next', async () => {
    const h = harness({ sliceMs: 5, cost: 0.01 });
    // In a turn the budget's drain began (one that work coming with I/O began goes on into the
    // next drain: the test below).
    await h.budget.pause();
    const turn = h.turns();
    // B spends this turn's budget and waits in line; then A comes, finds it spent and waits ahead of B.
    const b = h.sliced('b', 3000);
    const a = h.sliced('a', 150);
    await Promise.all([a, b]);
    h.stop();
    expect(h.progress.get('b')![0]).toBe(turn);
    // A (1.5 ms) the next turn, then B in the same turn with what A left.
    expect(h.progress.get('a')).toEqual([turn + 1]);
    expect(h.progress.get('b')![1]).toBe(turn + 1);
    expect(h.perTurn.get(turn + 1)).toBeGreaterThanOrEqual(5);
    expect(h.perTurn.get(turn + 1)).toBeLessThanOrEqual(6);
  });

  it("the hub's preparation of a snapshot that comes when the budget is spent waits a turn, at the head of the line, and leaves what its step left to the next", async () => {
    const h = harness({ sliceMs: 5, cost: 0.01 });
    await h.budget.pause();
    const turn = h.turns();
    const prepared: number[] = [];
    const state = indexedBaseline(emptyBaseline());
    // The preparation's work is not on the fake clock: each look at the clock (after each
    // SLICE_CHECK records read) moves it by 0.5 ms per 100 records instead.
    let looks = 0;
    const clock = h.slices(1000).now!;
    const slices: SliceOptions = {
      ...h.slices(1000),
      now: () => {
        looks += 1;
        h.advance(0.005 * SLICE_CHECK);
        return clock();
      },
    };
    const b = h.sliced('b', 3000);
    const snap = snapshot(t(0), Array.from({ length: 1500 }, (_, i) => entity(`i${i}`)));
    const a = firstValueFrom(
      of(snap).pipe(
        preparedInSlices(() => {
          prepared.push(h.turns());
          return state;
        }, slices),
      ),
    );
    expect(prepared).toEqual([]);
    await Promise.all([a, b]);
    h.stop();
    expect(h.progress.get('b')![0]).toBe(turn);
    // Its preparation went first in the next turn, before B's second slice.
    expect(prepared[0]).toBe(turn + 1);
    expect(h.progress.get('b')![1]).toBeGreaterThanOrEqual(prepared[0]!);
    // The clock looked at every SLICE_CHECK records read, as with `ms` (1,500 records).
    expect(looks).toBeGreaterThanOrEqual(1500 / SLICE_CHECK);
    // The preparation ended (7.5 ms of looks) in a turn that B then finished.
    expect(h.progress.get('b')!).toContain(prepared.at(-1));
  });
  it.each([
    ['begins the budget (the turn before had none)', true],
    ['finds what a drain left of its budget (the work before it ran out)', false],
  ])('work that came with I/O and the drain after it share one budget: from one poll for I/O to the next, at most the budget (and a check) — when the I/O %s', async (_, afterDrain) => {
    const h = harness({ sliceMs: 5, cost: 0.01 });
    // Pages of 800 records (8 ms) come one at a time on a port (a poll for I/O: a parse worker's
    // batch, a page's end), each asked for when the last one is done: its first slice runs in
    // the poll for I/O, before the budget's drain of that turn.
    const { port1, port2 } = new MessageChannel();
    let pages = 0;
    const done = new Promise<void>((resolve) => {
      port2.on(
        'message',
        h.io(() => {
          void h.sliced('page', 800).then(() => {
            pages += 1;
            if (pages === 6) return resolve();
            // After the drain that follows (it finds no one in line) the next page's turn begins
            // with no budget; asked for at once, it finds what the last page's drain left.
            if (afterDrain) setImmediate(() => port1.postMessage('page'));
            else port1.postMessage('page');
          });
        }),
      );
    });
    port1.postMessage('page');
    await done;
    port1.close();
    h.stop();
    expect(pages).toBe(6);
    // The drain after the poll for I/O goes on with that budget instead of beginning another.
    // One look at the clock (25 records) may pass it.
    expect(Math.max(...h.perLoop.values())).toBeLessThanOrEqual(5 + 0.25 + 1e-9);
    // And no page waits long for it: two budgets' work (8 ms of 5), at most a turn lost on a
    // spent budget that a drain went on with, and a turn for the port: at most 4 turns a page.
    expect(h.turns()).toBeLessThanOrEqual(6 * 4 + 1);
  });
});
