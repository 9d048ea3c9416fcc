import { Observable, of, throwError } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { errorMessage } from '../../src/log.js';
import type { SnapshotObservation } from '../../src/model.js';
import { OptionReader } from '../../src/options.js';
import { PollTimeoutError, poll, pollSnapshots, readPollTiming } from '../../src/poll.js';
import type { SourceSignal } from '../../src/source.js';
import { marbles } from '../support/marbles.js';

/**
 * src/poll.ts beyond the marble specs of poll.test.ts: what a snapshot carries, the health
 * signals' fields, and readPollTiming's defaults and refusals. Written to kill mutants
 * (docs/testing.md, "Mutation testing").
 */

const exact = { random: () => 0 };

/** What `source$` emits until `untilMs` of virtual time (a poll never completes by itself). */
function collect<T>(m: { scheduler: { schedule(work: () => void, delay: number): unknown; flush(): void } }, source$: Observable<T>, untilMs: number): T[] {
  const seen: T[] = [];
  const subscription = source$.subscribe((v) => seen.push(v));
  m.scheduler.schedule(() => subscription.unsubscribe(), untilMs);
  m.scheduler.flush();
  return seen;
}

describe('pollSnapshots', () => {
  it(
    'passes missesBeforeDelete, the types, the source and the attempt time on to every snapshot',
    marbles((m) => {
      const types = ['nagios.host', 'nagios.service'];
      const signal$ = pollSnapshots<string>(() => m.cold('-(r|)', { r: ['x'] }), {
        intervalMs: 10,
        timeoutMs: 5,
        scheduler: m.scheduler,
        types,
        source: 'monitoring',
        missesBeforeDelete: 3,
      });
      const snapshot: SnapshotObservation<string> = {
        kind: 'snapshot',
        source: 'monitoring',
        types: ['nagios.host', 'nagios.service'],
        at: new Date(0).toISOString(),
        records: ['x'],
        missesBeforeDelete: 3,
      };
      m.expect(signal$, '^ 5ms !').toBeObservable('-(us)', { u: { kind: 'health', status: 'up' }, s: snapshot });
      m.flush();
      // Its own copy of the types: a consumer that changes it changes no other snapshot.
      types.push('nagios.other');
    }),
  );

  it(
    'leaves missesBeforeDelete out when the source has none',
    marbles((m) => {
      const signal$ = pollSnapshots<string>(() => of([]), { intervalMs: 10, timeoutMs: 5, scheduler: m.scheduler, types: ['x.y'], source: 's' });
      const seen = collect(m, signal$, 5);
      expect(seen[1]).toEqual({ kind: 'snapshot', source: 's', types: ['x.y'], at: new Date(0).toISOString(), records: [] });
      expect(Object.keys(seen[1]!)).not.toContain('missesBeforeDelete');
    }),
  );

  it(
    'reports down with the error and the retry delay on each failure, and up once again after it',
    marbles((m) => {
      let attempt = 0;
      const fetch = (): Observable<string[]> => (++attempt <= 2 ? throwError(() => new Error(`refused ${attempt}`)) : of(['r']));
      const signal$ = pollSnapshots<string>(fetch, { intervalMs: 100, timeoutMs: 5, backoff: { initialMs: 4, factor: 3, ...exact }, scheduler: m.scheduler, types: ['x.y'], source: 's' });
      const brief = (s: SourceSignal<string>): string =>
        s.kind === 'health' ? `${s.status}${s.status === 'down' ? `:${errorMessage(s.error)}:${s.retryInMs}` : ''}` : `snap:${s.kind === 'snapshot' ? s.records.join() : ''}`;
      const seen = collect(m, signal$, 50).map(brief);
      expect(seen.slice(0, 4)).toEqual(['down:refused 1:4', 'down:refused 2:12', 'up', 'snap:r']);
    }),
  );
});

describe('poll', () => {
  it(
    'takes the first value of an attempt and names its timeout',
    marbles((m) => {
      const outcomes = collect(m, poll(() => m.cold('-(ab)', { a: 'first', b: 'second' }), { intervalMs: 50, timeoutMs: 10, scheduler: m.scheduler }), 200);
      expect(outcomes[0]).toEqual({ ok: true, value: 'first' });
      expect(outcomes).toHaveLength(4);
      expect(outcomes.every((o) => o.ok)).toBe(true);
      const error = new PollTimeoutError(250);
      expect(error.message).toBe('poll timed out after 250 ms');
      expect(error.name).toBe('PollTimeoutError');
      expect(error.timeoutMs).toBe(250);
    }),
  );

  it(
    'gives each attempt its start time on the scheduler, and starts each subscription afresh',
    marbles((m) => {
      const starts: string[] = [];
      let fail = true;
      const fetch = ({ startedAt }: { startedAt: string }): Observable<string> => {
        starts.push(startedAt);
        return fail ? throwError(() => new Error('no')) : of('ok');
      };
      const polled = poll(fetch, { intervalMs: 7, timeoutMs: 5, backoff: { initialMs: 3, factor: 2, ...exact }, scheduler: m.scheduler });
      const first = collect(m, polled, 20);
      // Failures at 0, 3, 9, … each wait twice as long as the last.
      expect(starts.slice(0, 3).map((s) => Date.parse(s))).toEqual([0, 3, 9]);
      expect(first.slice(0, 3)).toMatchObject([{ ok: false, retryInMs: 3 }, { ok: false, retryInMs: 6 }, { ok: false, retryInMs: 12 }]);
      // A new subscription counts its own failures from the first.
      fail = true;
      const second: unknown[] = [];
      const two = polled.subscribe((o) => second.push(o));
      two.unsubscribe();
      expect(second[0]).toMatchObject({ ok: false, retryInMs: 3 });
    }),
  );
});

describe('readPollTiming', () => {
  const read = (value: Record<string, unknown>): ReturnType<typeof readPollTiming> => readPollTiming(new OptionReader(value, 'sources[0]'), 10_000);

  it('reads interval, timeout and missesBeforeDelete with their defaults', () => {
    expect(read({})).toEqual({ intervalMs: 30_000, timeoutMs: 10_000, missesBeforeDelete: 1, progressEveryMs: 5_000 });
    expect(read({ interval: '5s', timeout: '2s', missesBeforeDelete: 3, progressInterval: '1m' })).toEqual({ intervalMs: 5_000, timeoutMs: 2_000, missesBeforeDelete: 3, progressEveryMs: 60_000 });
  });

  it('refuses what cannot be a timing, naming the field', () => {
    expect(() => read({ interval: 0 })).toThrow('sources[0].interval: must be more than 0');
    expect(() => read({ timeout: '0s' })).toThrow('sources[0].timeout: must be more than 0');
    expect(() => read({ progressInterval: '0s' })).toThrow('sources[0].progressInterval: must be more than 0');
    expect(() => read({ missesBeforeDelete: 0 })).toThrow('sources[0].missesBeforeDelete: expected at least 1, got 0');
    expect(() => read({ missesBeforeDelete: 1.5 })).toThrow('sources[0].missesBeforeDelete: expected a whole number, got 1.5');
    expect(read({ interval: '1ms', timeout: '1ms' })).toMatchObject({ intervalMs: 1, timeoutMs: 1 });
  });
});
