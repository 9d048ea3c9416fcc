import { NEVER, Observable, type SchedulerLike, defer, filter, map, tap } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { createLogger, errorMessage } from '../../src/log.js';
import { type PollOutcome, type ReadCount, type SnapshotAttempt, pageChannel, poll, pollSnapshots } from '../../src/poll.js';
import type { BaselineLookup, KeptPaging } from '../../src/kept.js';
import type { SourceSignal } from '../../src/source.js';
import { marbles } from '../support/marbles.js';

const brief = (o: PollOutcome<string>): string => (o.ok ? `ok:${o.value}` : `fail:${o.retryInMs}`);
const exact = { random: () => 0 }; // no jitter: exact backoff delays

describe('poll', () => {
  it(
    'polls at once, then `interval` after each success, one attempt at a time',
    marbles((m) => {
      let inFlight = 0;
      let maxInFlight = 0;
      const fetch = () =>
        defer(() => {
          maxInFlight = Math.max(maxInFlight, ++inFlight);
          return new Observable<string>((s) => {
            const inner = m.cold('---(r|)', { r: 'r' }).subscribe(s);
            return () => {
              inFlight--;
              inner.unsubscribe();
            };
          });
        });
      const result = poll(fetch, { intervalMs: 5, timeoutMs: 100, scheduler: m.scheduler });
      m.expect(result.pipe(mapBrief), '^-------------------!').toBeObservable('---a-------a-------a', { a: 'ok:r' });
      m.flush();
      expect(maxInFlight).toBe(1);
    }),
  );

  it(
    'abandons an attempt after `timeout` (aborting it), backs off exponentially, and resets after a success',
    marbles((m) => {
      const signals: AbortSignal[] = [];
      let attempt = 0;
      const fetch = ({ signal }: { signal: AbortSignal }) => {
        signals.push(signal);
        return ++attempt < 4 ? (NEVER as Observable<string>) : m.cold('(r|)', { r: 'r' });
      };
      const result = poll(fetch, { intervalMs: 50, timeoutMs: 4, backoff: { initialMs: 10, factor: 2, ...exact }, scheduler: m.scheduler });
      // attempts at 0, 14, 38 time out after 4 (retry in 10, 20, 40); the one at 82 succeeds.
      m.expect(result.pipe(mapBrief), '^ 100ms !').toBeObservable('---- a 13ms b 23ms c 39ms d', { a: 'fail:10', b: 'fail:20', c: 'fail:40', d: 'ok:r' });
      m.flush();
      expect(signals.slice(0, 3).map((s) => s.aborted)).toEqual([true, true, true]);
    }),
  );

  it(
    'stops when unsubscribed: the attempt in flight is unsubscribed and aborted',
    marbles((m) => {
      const slow = m.cold('----------(r|)', { r: 'r' });
      let signal: AbortSignal | undefined;
      const result = poll(
        (a) => {
          signal = a.signal;
          return slow;
        },
        { intervalMs: 5, timeoutMs: 100, scheduler: m.scheduler },
      );
      m.expect(result, '^---!').toBeObservable('-');
      m.expect(slow).toHaveSubscriptions('^---!');
      m.flush();
      expect(signal?.aborted).toBe(true);
    }),
  );

  it(
    'pollSnapshots emits a snapshot per success and health changes, never a snapshot for a failure',
    marbles((m) => {
      let attempt = 0;
      const fetch = () => (++attempt === 2 ? m.cold('#', {}, new Error('HTTP 500 from http://127.0.0.1/servers')) : m.cold('-(r|)', { r: [attempt] }));
      const signal$ = pollSnapshots<number>(fetch, { intervalMs: 10, timeoutMs: 5, backoff: { initialMs: 3, ...exact }, scheduler: m.scheduler, types: ['x.y'], source: 'nova' });
      const brief = (s: SourceSignal<number>): string => (s.kind === 'health' ? `${s.status}${s.error ? ':' + errorMessage(s.error) : ''}` : s.kind === 'snapshot' ? `snap${s.records.join()}@${s.at.slice(17, 23)}` : s.kind);
      m.expect(signal$.pipe(mapAny(brief)), '^ 29ms !').toBeObservable('-(us) 6ms d 3ms (ut) 7ms v', {
        u: 'up',
        s: 'snap1@00.000',
        d: 'down:HTTP 500 from http://127.0.0.1/servers',
        t: 'snap3@00.014',
        v: 'snap4@00.025',
      });
    }),
  );

  it(
    "pollSnapshots hands the source's deletion hysteresis (missesBeforeDelete) to every snapshot",
    marbles((m) => {
      const fetch = () => m.cold('-(r|)', { r: [1] });
      const hysteresis = (signal$: ReturnType<typeof pollSnapshots<number>>) =>
        signal$.pipe(mapAny((s) => (s.kind === 'snapshot' ? `m${s.missesBeforeDelete ?? '-'}` : s.kind)));
      const options = { intervalMs: 10, timeoutMs: 5, scheduler: m.scheduler, types: ['x.y'], source: 'nova' };
      m.expect(hysteresis(pollSnapshots<number>(fetch, { ...options, missesBeforeDelete: 3 })), '^ 15ms !').toBeObservable('-(hs) 7ms s', { h: 'health', s: 'm3' });
      m.expect(hysteresis(pollSnapshots<number>(fetch, options)), '^ 15ms !').toBeObservable('-(hs) 7ms s', { h: 'health', s: 'm-' });
    }),
  );

  it(
    'pollSnapshots with a lent baseline: each attempt a new generation, given to its fetch (kept) and set on its snapshot',
    marbles((m) => {
      const lookup: BaselineLookup = { base: () => undefined, kept: () => undefined };
      const given: (KeptPaging | undefined)[] = [];
      const fetch = (a: SnapshotAttempt<number>) => {
        given.push(a.kept);
        return m.cold('-(r|)', { r: [1] });
      };
      const generations = (signal$: ReturnType<typeof pollSnapshots<number>>) =>
        signal$.pipe(mapAny((s) => (s.kind === 'snapshot' ? `g${s.generation === undefined ? '-' : s.generation === given.at(-1)?.generation ? '=' : '?'}` : s.kind)));
      const options = { intervalMs: 10, timeoutMs: 5, scheduler: m.scheduler, types: ['x.y'], source: 'nova' };
      m.expect(generations(pollSnapshots<number>(fetch, { ...options, baseline: () => lookup })), '^ 15ms !').toBeObservable('-(hs) 7ms s', { h: 'health', s: 'g=' });
      m.flush();
      expect(given.map((k) => k !== undefined && k.lookup === lookup && k.family === 'nova')).toEqual([true, true]);
      expect(given[1]!.generation).toBeGreaterThan(given[0]!.generation);
    }),
  );

  it(
    'pollSnapshots without a lent baseline: no generation, no kept',
    marbles((m) => {
      const given: (KeptPaging | undefined)[] = [];
      const fetch = (a: SnapshotAttempt<number>) => {
        given.push(a.kept);
        return m.cold('-(r|)', { r: [1] });
      };
      const generations = (signal$: ReturnType<typeof pollSnapshots<number>>) => signal$.pipe(mapAny((s) => (s.kind === 'snapshot' ? `g${s.generation ?? '-'}` : s.kind)));
      const options = { intervalMs: 10, timeoutMs: 5, scheduler: m.scheduler, types: ['x.y'], source: 'nova' };
      m.expect(generations(pollSnapshots<number>(fetch, { ...options, baseline: () => undefined })), '^ 15ms !').toBeObservable('-(hs) 7ms s', { h: 'health', s: 'g-' });
      m.expect(generations(pollSnapshots<number>(fetch, options)), '^ 15ms !').toBeObservable('-(hs) 7ms s', { h: 'health', s: 'g-' });
      m.flush();
      expect(given).toEqual([undefined, undefined, undefined, undefined]);
    }),
  );

  it(
    'pollSnapshots logs a long poll\'s progress every `progressEveryMs` and gives each snapshot what its poll read',
    marbles((m) => {
      // What the source's clients received before this poll (an earlier one) is not this poll's.
      const received: ReadCount = { responses: 7, bytes: 100, records: 5 };
      const page = (records: number) => () => {
        received.responses += 1;
        received.bytes += 10;
        received.records += records;
      };
      // The first page counts no records (a source that counts pages only): no `records` in its line.
      const pages = { a: page(0), b: page(2), r: () => undefined };
      const fetch = () =>
        m.cold('- a 3ms b 4ms (r|)', pages).pipe(
          tap((f) => f()),
          filter((f) => f === pages.r),
          map(() => [1, 2, 3, 4]),
        );
      const lines: Record<string, unknown>[] = [];
      const log = createLogger('info', (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
      const signal$ = pollSnapshots<number>(fetch, { intervalMs: 100, timeoutMs: 50, progressEveryMs: 4, received: () => received, log, scheduler: m.scheduler, types: ['x.y'], source: 'nagios' });
      const read = (s: SourceSignal<number>) => (s.kind === 'snapshot' ? JSON.stringify(s.read) : s.kind);
      // Subscribed at 5 ms, so times are counted from the poll's start, not from the clock's zero.
      m.expect(signal$.pipe(mapAny(read)), '5ms ^ 40ms !').toBeObservable('5ms 10ms (hs)', { h: 'health', s: JSON.stringify({ pages: 2, bytes: 20, readMs: 10 }) });
      m.flush();
      // At 4 and 8 ms; none after the poll ended at 10 (its timer went with it).
      expect(lines.map(({ level, msg, source, pages, records, bytes, elapsedMs }) => ({ level, msg, source, pages, records, bytes, elapsedMs }))).toStrictEqual([
        { level: 'info', msg: 'still reading', source: 'nagios', pages: 1, records: undefined, bytes: 10, elapsedMs: 4 },
        { level: 'info', msg: 'still reading', source: 'nagios', pages: 2, records: 2, bytes: 20, elapsedMs: 8 },
      ]);
      expect('records' in lines[0]!).toBe(false);
    }),
  );

  it(
    'pollSnapshots without `received` says nothing of what a poll read',
    marbles((m) => {
      const signal$ = pollSnapshots<number>(() => m.cold('10ms (r|)', { r: [1] }), { intervalMs: 100, timeoutMs: 50, progressEveryMs: 4, scheduler: m.scheduler, types: ['x.y'], source: 'nova' });
      m.expect(signal$.pipe(mapAny((s) => (s.kind === 'snapshot' ? String('read' in s) : s.kind))), '^ 20ms !').toBeObservable('10ms (hs)', { h: 'health', s: 'false' });
    }),
  );
});

/** What a poll source's stream says, with the time: its signals, and the pieces of each snapshot's pages as they come. */
function logOf(signal$: Observable<SourceSignal<number>>, scheduler: SchedulerLike, until: number): string[] {
  const log: string[] = [];
  const at = (): string => `${scheduler.now()}`;
  // The poll goes on for ever: stopped at `until`, so that the virtual clock can be flushed.
  const subscription = signal$.subscribe((s) => {
    if (s.kind === 'health') return void log.push(`${at()} ${s.status}${s.error ? ':' + errorMessage(s.error) : ''}`);
    if (s.kind !== 'snapshot') return void log.push(`${at()} ${s.kind}`);
    log.push(`${at()} snapshot [${s.records.join()}]${s.pages ? ' +pages' : ''}${s.read ? ` read ${s.read.pages}` : ''}`);
    s.pages?.subscribe({
      next: (piece) => log.push(`${at()} piece ${piece.join()}`),
      error: (e: unknown) => log.push(`${at()} pages failed: ${errorMessage(e)}`),
      complete: () => log.push(`${at()} pages complete${s.read ? ` read ${s.read.pages}` : ''}`),
    });
  });
  scheduler.schedule(() => subscription.unsubscribe(), until);
  return log;
}

/** A poll attempt that delivers pieces at the frames of `marble` (`a`: [1, 2], `b`: [3]) and returns `r`: [4]. */
function delivering(m: { cold: (marble: string, values?: Record<string, unknown>, error?: unknown) => Observable<unknown> }, marble: string, error?: unknown) {
  return (attempt: SnapshotAttempt<number>) =>
    m.cold(marble, { a: [1, 2], b: [3], r: [4] }, error).pipe(
      tap((v) => (v as number[])[0] !== 4 && attempt.deliver(v as number[])),
      filter((v) => (v as number[])[0] === 4),
      map((v) => v as number[]),
    );
}

describe('pollSnapshots with pages', () => {
  it(
    'emits the snapshot at its first piece, hands each over as delivered, and completes the pages (with what the poll read) when the poll succeeds',
    marbles((m) => {
      const received: ReadCount = { responses: 0, bytes: 0, records: 0 };
      let attempts = 0;
      const fetch = (attempt: SnapshotAttempt<number>) => {
        attempts++;
        received.responses += 3;
        // The second poll delivers nothing: a snapshot whole at the end, as before.
        return attempts === 1 ? delivering(m, '-a-b-(r|)')(attempt) : m.cold('--(r|)', { r: [5] });
      };
      const log = logOf(pollSnapshots<number>(fetch, { intervalMs: 10, timeoutMs: 50, received: () => received, scheduler: m.scheduler, types: ['x.y'], source: 'nova' }), m.scheduler, 20);
      m.flush();
      expect(log.slice(0, 8)).toEqual(['1 snapshot [] +pages', '1 piece 1,2', '3 piece 3', '5 piece 4', '5 pages complete read 3', '5 up', '17 snapshot [5] read 3']);
    }),
  );

  it(
    'errors the pages of a poll that fails part-way (the snapshot never was), reports it down, and starts the next poll afresh',
    marbles((m) => {
      let attempts = 0;
      let late: ((records: readonly number[]) => void) | undefined;
      const fetch = (attempt: SnapshotAttempt<number>) => {
        attempts++;
        if (attempts === 1) {
          late = attempt.deliver;
          return delivering(m, '-a-#', new Error('GET /servers?marker=2 failed with 500'))(attempt);
        }
        return delivering(m, '-b-(r|)')(attempt);
      };
      const log = logOf(pollSnapshots<number>(fetch, { intervalMs: 10, timeoutMs: 50, backoff: { initialMs: 4, ...exact }, scheduler: m.scheduler, types: ['x.y'], source: 'nova' }), m.scheduler, 12);
      // A page handed over after its poll failed goes nowhere, and starts no snapshot.
      m.scheduler.schedule(() => late?.([9]), 5);
      m.flush();
      expect(log.slice(0, 9)).toEqual([
        '1 snapshot [] +pages',
        '1 piece 1,2',
        '3 pages failed: GET /servers?marker=2 failed with 500',
        '3 down:GET /servers?marker=2 failed with 500',
        '8 snapshot [] +pages',
        '8 piece 3',
        '10 piece 4',
        '10 pages complete',
        '10 up',
      ]);
    }),
  );

  it(
    'errors the pages of a poll that times out',
    marbles((m) => {
      const log = logOf(pollSnapshots<number>(delivering(m, '-a------'), { intervalMs: 10, timeoutMs: 4, backoff: { initialMs: 100, ...exact }, scheduler: m.scheduler, types: ['x.y'], source: 'nova' }), m.scheduler, 50);
      m.flush();
      expect(log).toEqual(['1 snapshot [] +pages', '1 piece 1,2', '4 pages failed: poll timed out after 4 ms', '4 down:poll timed out after 4 ms']);
    }),
  );
});

describe('pollSnapshots stopped mid-poll', () => {
  it(
    'errors the pages it had handed over: a reader outside the stream learns the snapshot never was',
    marbles((m) => {
      const log = logOf(pollSnapshots<number>(delivering(m, '-a------'), { intervalMs: 10, timeoutMs: 50, scheduler: m.scheduler, types: ['x.y'], source: 'nova' }), m.scheduler, 5);
      m.flush();
      expect(log).toEqual(['1 snapshot [] +pages', '1 piece 1,2', '5 pages failed: nova: stopped before its poll was complete']);
    }),
  );
});

describe('pageChannel', () => {
  it('holds the pieces until its one reader comes, then hands them over as they come', () => {
    const channel = pageChannel<number>();
    channel.push([1]);
    channel.push([2, 3]);
    const got: string[] = [];
    channel.pages$.subscribe({ next: (p) => got.push(p.join()), complete: () => got.push('complete') });
    channel.push([4]);
    channel.complete();
    channel.push([5]);
    expect(got).toEqual(['1', '2,3', '4', 'complete']);
    let second: unknown;
    channel.pages$.subscribe({ error: (e: unknown) => (second = e) });
    expect(errorMessage(second)).toBe("a snapshot's pages are read once");
  });

  it('a failure lets go of what it held: the reader gets the error only', () => {
    const channel = pageChannel<number>();
    channel.push([1]);
    channel.fail(new Error('page 2 failed'));
    channel.complete();
    const got: string[] = [];
    channel.pages$.subscribe({ next: (p) => got.push(p.join()), error: (e: unknown) => got.push(errorMessage(e)), complete: () => got.push('complete') });
    expect(got).toEqual(['page 2 failed']);
  });

  it('a complete channel read late hands over everything, then completes; a reader that leaves takes nothing more', () => {
    const channel = pageChannel<number>();
    channel.push([1]);
    channel.complete();
    const got: string[] = [];
    channel.pages$.subscribe({ next: (p) => got.push(p.join()), complete: () => got.push('complete') });
    expect(got).toEqual(['1', 'complete']);
    const open = pageChannel<number>();
    const seen: string[] = [];
    const subscription = open.pages$.subscribe((p) => seen.push(p.join()));
    open.push([1]);
    subscription.unsubscribe();
    open.push([2]);
    expect(seen).toEqual(['1']);
  });
});

const mapBrief = map(brief);
function mapAny<T>(f: (v: T) => string) {
  return map(f);
}
