import {
  type ObservableInput,
  type SchedulerLike,
  Observable,
  asyncScheduler,
  catchError,
  defer,
  finalize,
  from,
  map,
  mergeMap,
  of,
  repeat,
  take,
  throwError,
  timeout,
  timer,
} from 'rxjs';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { type Logger, asError, silentLogger } from './log.js';
import type { EntityType, ReadStats, SnapshotObservation } from './model.js';
import type { OptionReader } from './options.js';
import type { HealthSignal, SourceSignal } from './source.js';

/** One poll attempt, as the fetch function sees it. */
export interface PollAttempt {
  /** Aborted when the poll times out or the source stops: pass it to the HTTP client. */
  signal: AbortSignal;
  /** When this attempt started (scheduler time), ISO: the `at` of the snapshot it yields. */
  startedAt: string;
}

export interface PollOptions {
  /** Time between the end of one successful poll and the start of the next, ms. */
  intervalMs: number;
  /** A poll that has not finished after this long is abandoned and counted as a failure, ms. */
  timeoutMs: number;
  /** Backoff between failed polls (exponential, jitter); the interval applies again after a success. */
  backoff?: BackoffOptions;
  scheduler?: SchedulerLike;
}

/** A poll that did not finish in time. */
export class PollTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`poll timed out after ${timeoutMs} ms`);
    this.name = 'PollTimeoutError';
  }
}

/** Turns a fetch that takes an AbortSignal into an Observable that aborts it on unsubscribe. */
function abortable<T>(fetch: (signal: AbortSignal) => ObservableInput<T>): Observable<T> {
  return new Observable<T>((subscriber) => {
    const controller = new AbortController();
    const subscription = defer(() => fetch(controller.signal)).subscribe(subscriber);
    return () => {
      subscription.unsubscribe();
      controller.abort();
    };
  });
}

/**
 * Polls `fetch` for ever: one attempt at a time (never overlapping), each with a timeout, the
 * interval after a success and exponential backoff after a failure. Emits each attempt's outcome:
 * `{ ok: true, value }` or `{ ok: false, error, retryInMs }` — a failure never errors the stream.
 *
 * ```
 * fetch:   -a|           -#           -b|
 * result:  -A---interval--E--backoff--B---interval-- …
 * ```
 *
 * 1. The first attempt starts at subscription.
 * 2. The next attempt starts `intervalMs` after a success, or `backoffDelay(n)` after the n-th
 *    failure in a row.
 * 3. An attempt that takes longer than `timeoutMs` is aborted (its AbortSignal fires) and counts
 *    as a failure with a PollTimeoutError.
 * 4. Unsubscribing aborts the attempt in flight and cancels the pending timer.
 *
 * @param fetch one attempt; resolves (or emits once) with the result.
 * @returns every attempt's outcome, in order.
 */
export function poll<T>(
  fetch: (attempt: PollAttempt) => ObservableInput<T>,
  options: PollOptions,
): Observable<PollOutcome<T>> {
  const { intervalMs, timeoutMs, backoff = {}, scheduler = asyncScheduler } = options;
  return defer(() => {
    // Per subscription: failures in a row, and the delay the last outcome asks for.
    let failures = 0;
    let nextDelayMs = intervalMs;
    return defer(() => {
      const startedAt = new Date(scheduler.now()).toISOString();
      return abortable((signal) => from(fetch({ signal, startedAt })).pipe(take(1))).pipe(
        timeout({ first: timeoutMs, scheduler, with: () => throwError(() => new PollTimeoutError(timeoutMs)) }),
        map((value): PollOutcome<T> => {
          failures = 0;
          nextDelayMs = intervalMs;
          return { ok: true, value };
        }),
        catchError((error: unknown) => {
          failures += 1;
          nextDelayMs = backoffDelay(failures, backoff);
          return of<PollOutcome<T>>({ ok: false, error, retryInMs: nextDelayMs });
        }),
      );
    }).pipe(repeat({ delay: () => timer(nextDelayMs, scheduler) }));
  });
}

export type PollOutcome<T> = { ok: true; value: T } | { ok: false; error: unknown; retryInMs: number };

/**
 * What a source's requests have received so far, counted up for ever (HttpClient.received): a
 * poll's share is the difference between its end and its start.
 */
export interface ReadCount {
  /** Successful responses (pages). */
  responses: number;
  /** Their body bytes. */
  bytes: number;
  /** Records taken from them, where the reader counts them (fetchAllPages does). */
  records: number;
}

export interface PollSnapshotsOptions extends PollOptions {
  /** The entity types every snapshot is complete for. */
  types: readonly EntityType[];
  source: string;
  missesBeforeDelete?: number;
  /**
   * What the source's HTTP clients have received so far (their `received`, summed). With it each
   * snapshot says what its poll read (`read`), and a long poll logs its progress.
   */
  received?: () => ReadCount;
  /** Where a long poll's progress goes (the source's logger). */
  log?: Logger;
  /** A poll still running logs `still reading` (pages, records, bytes so far) at info this often, ms (default 5000). */
  progressEveryMs?: number;
}

const NOTHING_READ: ReadCount = { responses: 0, bytes: 0, records: 0 };

/**
 * The poll source's stream: a snapshot per successful attempt and a health signal whenever the
 * health changes (down on every failure, with the reason and the time to the next attempt; up on
 * the first success after a failure or at start). A failed attempt emits no snapshot (DESIGN
 * rule 5): an outage never looks like an empty source.
 *
 * With `received`, every snapshot carries what its poll read (pages, bytes, time), and while an
 * attempt runs longer than `progressEveryMs` a `still reading` line says how far it got: a first
 * sync of 100,000 servers takes minutes, and an operator should see it move.
 */
export function pollSnapshots<R>(
  fetch: (attempt: PollAttempt) => ObservableInput<R[]>,
  options: PollSnapshotsOptions,
): Observable<SourceSignal<R>> {
  const { types, source, missesBeforeDelete, received, log = silentLogger, progressEveryMs = 5000, scheduler = asyncScheduler } = options;
  const count = received ?? ((): ReadCount => NOTHING_READ);
  const read = (attempt: PollAttempt): Observable<{ records: R[]; at: string; read?: ReadStats }> =>
    defer(() => {
      const before = { ...count() };
      const started = scheduler.now();
      const sofar = (): ReadCount => {
        const now = count();
        return { responses: now.responses - before.responses, bytes: now.bytes - before.bytes, records: now.records - before.records };
      };
      const progress = received
        ? timer(progressEveryMs, progressEveryMs, scheduler).subscribe(() => {
            const { responses, bytes, records } = sofar();
            log.info('still reading', { source, pages: responses, ...(records > 0 ? { records } : {}), bytes, elapsedMs: scheduler.now() - started });
          })
        : undefined;
      return from(fetch(attempt)).pipe(
        map((records) => {
          const { responses, bytes } = sofar();
          return { records, at: attempt.startedAt, ...(received ? { read: { pages: responses, bytes, readMs: scheduler.now() - started } } : {}) };
        }),
        // Done, failed, timed out or stopped: the attempt's progress ends with it.
        finalize(() => progress?.unsubscribe()),
      );
    });
  return defer(() => {
    let up = false;
    return poll(read, options).pipe(
      map((outcome): SourceSignal<R>[] => {
        if (!outcome.ok) {
          up = false;
          // The Error itself: the hub logs its message, and its stack at debug.
          const down: HealthSignal = { kind: 'health', status: 'down', error: asError(outcome.error), retryInMs: outcome.retryInMs };
          return [down];
        }
        const snapshot: SnapshotObservation<R> = {
          kind: 'snapshot',
          source,
          types: [...types],
          at: outcome.value.at,
          records: outcome.value.records,
          ...(missesBeforeDelete !== undefined ? { missesBeforeDelete } : {}),
          ...(outcome.value.read ? { read: outcome.value.read } : {}),
        };
        if (up) return [snapshot];
        up = true;
        return [{ kind: 'health', status: 'up' }, snapshot];
      }),
      mergeMap((signals) => signals),
    );
  });
}

/** The keys every poll source is timed with. */
export interface PollTiming {
  intervalMs: number;
  timeoutMs: number;
  missesBeforeDelete: number;
  /** A poll still running logs its progress this often, ms (`progressInterval`). */
  progressEveryMs: number;
}

/**
 * Reads `interval` (default 30s), `timeout` (default `timeoutMs`), `missesBeforeDelete`
 * (default 1) and `progressInterval` (default 5s) — the same keys, with the same checks, for
 * every poll source.
 */
export function readPollTiming(read: OptionReader, timeoutMs: number): PollTiming {
  const timing = {
    intervalMs: read.duration('interval', 30_000),
    timeoutMs: read.duration('timeout', timeoutMs),
    missesBeforeDelete: read.number('missesBeforeDelete', 1, { min: 1, integer: true }),
    progressEveryMs: read.duration('progressInterval', 5000),
  };
  if (timing.intervalMs <= 0) read.fail('interval', 'must be more than 0');
  if (timing.progressEveryMs <= 0) read.fail('progressInterval', 'must be more than 0');
  if (timing.timeoutMs <= 0) read.fail('timeout', 'must be more than 0');
  return timing;
}
