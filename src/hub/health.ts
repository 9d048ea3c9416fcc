import { BehaviorSubject, type Observable } from 'rxjs';
import { match } from 'ts-pattern';
import { type Logger, errorMessage } from '../log.js';
import type { HealthSignal } from '../source.js';
import type { SourceHealth } from './types.js';

/** Per-source health: what each source last said of itself, logged on every change. */
export interface HealthBoard {
  readonly health$: Observable<Readonly<Record<string, SourceHealth>>>;
  value(): Readonly<Record<string, SourceHealth>>;
  /** `error` may be the Error itself: /health gets its message, the log its stack at debug. */
  set(source: string, update: HealthUpdate): void;
  /** A source's own signal (or the hub's on its behalf): up, or down with the error and retry delay. */
  signal(source: string, signal: HealthSignal): void;
}

export type HealthUpdate = Partial<Omit<SourceHealth, 'error'>> & { error?: string | Error };

export function createHealthBoard(names: readonly string[], now: () => string, log: Logger): HealthBoard {
  const health = new BehaviorSubject<Readonly<Record<string, SourceHealth>>>(
    Object.fromEntries(names.map((name) => [name, { source: name, status: 'starting', since: now(), failures: 0 } satisfies SourceHealth])),
  );

  const set = (source: string, update: HealthUpdate): void => {
    const prev = health.value[source] ?? { source, status: 'starting', since: now(), failures: 0 };
    const status = update.status ?? prev.status;
    const next: SourceHealth = {
      source,
      status,
      since: status === prev.status ? prev.since : now(),
      failures: status === 'up' ? 0 : (update.failures ?? prev.failures),
      ...(status === 'down' && update.error !== undefined ? { error: errorMessage(update.error) } : {}),
      ...(status === 'down' && update.retryInMs !== undefined ? { retryInMs: update.retryInMs } : {}),
    };
    // The Error when there is one, so that its stack is logged at debug.
    const error = status === 'down' ? (update.error ?? next.error) : undefined;
    if (status !== prev.status) {
      const fields = { source, status, ...(error ? { error } : {}), ...(next.retryInMs !== undefined ? { retryInMs: next.retryInMs } : {}) };
      if (status === 'down') log.warn('source is down', fields);
      else log.info(`source is ${status}`, fields);
    } else if (status === 'down') {
      log.warn('source still down', { source, error, failures: next.failures, retryInMs: next.retryInMs });
    }
    health.next({ ...health.value, [source]: next });
  };

  const signal = (source: string, s: HealthSignal): void =>
    match(s.status)
      .with('up', () => set(source, { status: 'up' }))
      .with('down', () =>
        set(source, {
          status: 'down',
          failures: (health.value[source]?.failures ?? 0) + 1,
          error: s.error ?? 'unknown error',
          // Undefined when not given: set() leaves out what is undefined.
          retryInMs: s.retryInMs,
        }),
      )
      .exhaustive();

  return { health$: health.asObservable(), value: () => health.value, set, signal };
}
