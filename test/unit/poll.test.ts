import { NEVER, Observable, defer, filter, map, tap } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { createLogger, errorMessage } from '../../src/log.js';
import { type PollOutcome, type ReadCount, poll, pollSnapshots } from '../../src/poll.js';
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

const mapBrief = map(brief);
function mapAny<T>(f: (v: T) => string) {
  return map(f);
}
