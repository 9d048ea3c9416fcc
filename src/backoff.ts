import { type MonoTypeOperatorFunction, type SchedulerLike, asyncScheduler, retry, timer } from 'rxjs';

/** Exponential backoff with jitter, the one retry policy of the synchronizer. */
export interface BackoffOptions {
  /** Delay before the first retry, ms (default 1000). */
  initialMs?: number;
  /** Upper bound of any delay, ms (default 60000). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /**
   * Share of the delay that is random (default 0.2): the delay lies in [d·(1−jitter), d], so
   * many clients that failed together do not retry together.
   */
  jitter?: number;
  /** Random source in [0, 1); tests pass a constant to get exact delays. */
  random?: () => number;
}

/** Delay before retry number `attempt` (1-based). */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const { initialMs = 1000, maxMs = 60_000, factor = 2, jitter = 0.2, random = Math.random } = options;
  const base = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt - 1));
  return Math.round(base * (1 - jitter * random()));
}

/** What a retry hook learns about the failure it is about to retry. */
export interface RetryInfo {
  error: unknown;
  attempt: number;
  delayMs: number;
}

/**
 * Resubscribes to the source after an error, waiting `backoffDelay(attempt)` on `scheduler`;
 * the attempt count starts over once a value gets through. Never gives up.
 *
 * ```
 * source:  --#            (each subscription fails at once)
 * result:  --(retry after 1s)--(retry after 2s)--(after 4s)…
 * ```
 */
export function retryWithBackoff<T>(
  options: BackoffOptions & { scheduler?: SchedulerLike; onRetry?: (info: RetryInfo) => void } = {},
): MonoTypeOperatorFunction<T> {
  const { scheduler = asyncScheduler, onRetry, ...backoff } = options;
  return retry<T>({
    resetOnSuccess: true,
    delay: (error: unknown, attempt: number) => {
      const delayMs = backoffDelay(attempt, backoff);
      onRetry?.({ error, attempt, delayMs });
      return timer(delayMs, scheduler);
    },
  });
}
